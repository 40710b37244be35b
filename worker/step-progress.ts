/** The environment variable that turns on `--log-steps` (set to anything). */
export const LOG_STEPS_ENV = 'SHARDWISE_LOG_STEPS';

/** How often a worker that does not log every step says what it did since its last progress line. */
export const PROGRESS_INTERVAL_MS = 10_000;

/** What one accepted training share adds to the progress line. */
export interface ShareProgress {
  globalStep: number;
  epoch: number;
  sampleCount: number;
  lossSum: number;
  computeSeconds: number;
}

/**
 * A worker's progress line when it does not log every step (`--log-steps`): the first accepted share at
 * once, then at most one line every `intervalMs` summing the shares accepted since the last line. A
 * line per share from every worker is a log line per worker and step: the log pipeline's CPU on the
 * job's own cores, and logs nobody reads at hundreds of steps a second.
 */
export class StepProgress {
  private shares = 0;
  private samples = 0;
  private lossSum = 0;
  private computeSeconds = 0;
  private firstStep = 0;
  private lastStep = 0;
  private lastLineMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly intervalMs = PROGRESS_INTERVAL_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Counts one accepted share; returns the line that is due, if one is. */
  add(share: ShareProgress): string | undefined {
    const fresh = this.shares === 0;
    this.firstStep = fresh ? share.globalStep : Math.min(this.firstStep, share.globalStep);
    this.lastStep = fresh ? share.globalStep : Math.max(this.lastStep, share.globalStep);
    this.shares++;
    this.samples += share.sampleCount;
    this.lossSum += share.lossSum;
    this.computeSeconds += share.computeSeconds;
    const at = this.now();
    if (at - this.lastLineMs < this.intervalMs) return undefined;
    const steps = this.firstStep === this.lastStep ? `step ${this.firstStep}` : `steps ${this.firstStep}-${this.lastStep}`;
    const line = `${steps} (epoch ${share.epoch}): ${counted(this.shares, 'share')}, ${counted(this.samples, 'sample')}, ` +
      `mean loss ${(this.lossSum / this.samples).toFixed(4)}, ${((this.computeSeconds / this.shares) * 1000).toFixed(1)} ms compute per share`;
    this.lastLineMs = at;
    this.shares = 0;
    this.samples = 0;
    this.lossSum = 0;
    this.computeSeconds = 0;
    return line;
  }
}

/** `n thing` or `n things`. */
function counted(n: number, thing: string): string {
  return `${n} ${thing}${n === 1 ? '' : 's'}`;
}
