import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { CurveFiles } from './curves';
import type { DrawAnswer, DrawRequest } from './curve-thread-protocol';
import { CurveThreadError } from './errors';
import type { MetricsRecord } from './records';

/** The thread entry beside this file: curve-thread-main.ts under tsx, .js once compiled. */
const THREAD_ENTRY = path.join(__dirname, `curve-thread-main${path.extname(__filename)}`);

/**
 * Code the thread starts with. Node 20 runs a worker's entry without the parent's `--import tsx` hooks,
 * so under tsx the entry is required through tsx's CommonJS hook; compiled code requires the .js.
 */
function bootstrap(): string {
  const hook = THREAD_ENTRY.endsWith('.ts') ? `require(${JSON.stringify(require.resolve('tsx/cjs'))});` : '';
  return `${hook}require(${JSON.stringify(THREAD_ENTRY)});`;
}

/**
 * The thread's heap caps, MiB. Uncapped, V8 let its heap grow with every draw: a process drawing after each
 * of 80 50-step epochs grew to 388-431 MiB RSS (2,500-4,000 steps), in the 64-worker soak the coordinator
 * went from 322 MiB after the warm-up to 400 at 2,000 steps. Capped, the same process stayed at 225-261 MiB
 * (64/8) and one drawing 20,000 steps every 5,000 at 238-310 (128/8); 64 MiB could not draw 5,000 steps at once.
 * The loss-per-iteration chart now draws at most 2,000 points a series (`iterationStride`), so a draw's heap no
 * longer grows with the run: 100,000 steps drew in 2.0 s with 81 MiB of heap, against 15.9 s and 298 MiB when
 * every step was a point (one process, `writeCurves`, load 8).
 */
const CURVE_THREAD_HEAP = { maxOldGenerationSizeMb: 128, maxYoungGenerationSizeMb: 8 };

interface PendingDraw {
  drawId: number;
  dir: string;
  resolve: (files: CurveFiles) => void;
  reject: (err: Error) => void;
}

/**
 * Draws a run's curves (`writeCurves`) in a worker thread. Laying out and rasterising six charts takes
 * 0.3-0.6 s and grows with the run (measured: 200 steps 320-370 ms, 2,000 steps 430-560 ms), all of it in
 * promise callbacks, so on the main thread it held the event loop as one block: a coordinator drawing
 * after an epoch served no worker meanwhile, and the next epoch's first step waited for the drawing.
 * The thread starts with `start()` or at the first draw, and keeps the records it was sent, so each draw
 * sends only the new ones. Draws run one at a time, in order. A thread that fails is replaced at the next draw.
 */
export class CurveThread {
  private worker: Worker | undefined;
  /** Records the current thread holds. */
  private sent = 0;
  private nextDrawId = 0;
  private pending: PendingDraw | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  /** Draws the curves of `records` (the run's records so far: the same array, grown) into `dir`. */
  draw(dir: string, records: readonly MetricsRecord[]): Promise<CurveFiles> {
    const drawn = this.queue.then(() => this.drawNow(dir, records));
    this.queue = drawn.catch(() => undefined);
    return drawn;
  }

  /** Waits for the draw in progress, then stops the thread. */
  async close(): Promise<void> {
    await this.queue;
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }

  /**
   * Starts the thread now (idempotent): a process that starts it with its run holds the same threads,
   * descriptors and about the same memory from its first step to its last.
   */
  start(): void {
    if (!this.worker) this.spawn();
  }

  private drawNow(dir: string, records: readonly MetricsRecord[]): Promise<CurveFiles> {
    const worker = this.worker ?? this.spawn();
    const drawId = this.nextDrawId++;
    const request: DrawRequest = { drawId, dir, added: records.slice(this.sent) };
    this.sent = records.length;
    return new Promise<CurveFiles>((resolve, reject) => {
      this.pending = { drawId, dir, resolve, reject };
      // Held while it draws (the process waits for the curves), let go once done (an idle thread keeps no process alive).
      worker.ref();
      worker.postMessage(request);
    });
  }

  private spawn(): Worker {
    const worker = new Worker(bootstrap(), { eval: true, resourceLimits: CURVE_THREAD_HEAP });
    // A recorder that is never closed must not keep its process alive.
    worker.unref();
    this.worker = worker;
    this.sent = 0;
    worker.on('message', (answer: DrawAnswer) => {
      const pending = this.pending;
      if (!pending || pending.drawId !== answer.drawId) return;
      this.pending = undefined;
      worker.unref();
      if (answer.type === 'drawn') pending.resolve(answer.files);
      else pending.reject(new CurveThreadError(pending.dir, `drawing the curves in ${pending.dir} failed: ${answer.message}`));
    });
    const lost = (why: string, cause?: unknown) => {
      if (this.worker === worker) this.worker = undefined;
      const pending = this.pending;
      this.pending = undefined;
      pending?.reject(new CurveThreadError(pending.dir, `the thread drawing the curves in ${pending.dir} ${why}`, { cause }));
    };
    worker.on('error', (err) => lost(`failed: ${err.message}`, err));
    worker.on('exit', (code) => lost(`exited with code ${code} while drawing`));
    return worker;
  }
}
