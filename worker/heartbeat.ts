import type { WorkerLifecycle } from './lifecycle';

/** What one heartbeat tells the coordinator: who is alive, and where it is. */
export interface HeartbeatReport {
  workerId: string;
  /** The registration's incarnation: a replaced one's heartbeats are refused. */
  incarnation: number;
  state: WorkerLifecycle;
  lastCompletedStep: number;
  configVersion: number;
}

/** The coordinator's answer to a heartbeat. */
export interface HeartbeatAnswer {
  /** The coordinator's latest config version. */
  configVersion: number;
  /** The coordinator asks the worker to finish its current share and leave. */
  drain: boolean;
  leaseMs: number;
  /** The key of an allreduce attempt that failed on the coordinator ('' when none): a part still running it ends. */
  voidedAllreduce: string;
}

/** What the heartbeat needs from the worker, and what it tells it. */
export interface HeartbeatOptions {
  /** Send one this often (the coordinator's heartbeat_interval_ms). */
  intervalMs: number;
  /** One heartbeat call; `deadlineMs` is its deadline. */
  send: (report: HeartbeatReport, deadlineMs: number) => Promise<HeartbeatAnswer>;
  /** The worker's state at the moment of sending (its id may change after a re-registration). */
  snapshot: () => HeartbeatReport;
  /** Each answer (drain requests, the coordinator's config version). */
  onResponse: (answer: HeartbeatAnswer) => void;
  /** Each failure; the main loop's own calls decide what a lost coordinator means, so this only reports. */
  onError: (error: unknown) => void;
}

/** Deadline of one heartbeat: it must not outlive the next one by much, nor give up on a busy coordinator at once. */
export function heartbeatDeadlineMs(intervalMs: number): number {
  return Math.max(2 * intervalMs, 2000);
}

/**
 * The worker's liveness lease, on its own timer so that it keeps going while the worker waits, pulls or
 * pushes. It never overlaps calls: the next heartbeat is due `intervalMs` after the previous one
 * started, or right after it ended if it took longer. The timer is unref'd (it never keeps the process
 * alive by itself). During compute it fires between micro-batches, when the worker yields.
 */
export class HeartbeatTimer {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private inFlight: Promise<void> | undefined;
  private sentCount = 0;
  private lastOkMs = 0;

  constructor(private readonly options: HeartbeatOptions) {
    if (!(options.intervalMs > 0)) throw new RangeError(`heartbeat interval: expected > 0 ms, got ${options.intervalMs}`);
  }

  /** Heartbeats sent so far (answered or not). */
  get sent(): number {
    return this.sentCount;
  }

  /** `Date.now()` of the last answered heartbeat; 0 before the first. */
  get lastSuccessMs(): number {
    return this.lastOkMs;
  }

  /** Sends the first heartbeat now and keeps going until `stop()`. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /** Stops the timer; resolves once a heartbeat in flight has ended. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => void this.beat(), delayMs);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    const started = Date.now();
    const { intervalMs } = this.options;
    this.inFlight = (async () => {
      try {
        this.sentCount++;
        const response = await this.options.send(this.options.snapshot(), heartbeatDeadlineMs(intervalMs));
        this.lastOkMs = Date.now();
        if (this.running) this.options.onResponse(response);
      } catch (err) {
        if (this.running) this.options.onError(err);
      }
    })();
    await this.inFlight;
    this.inFlight = undefined;
    this.schedule(Math.max(0, intervalMs - (Date.now() - started)));
  }
}
