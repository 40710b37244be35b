import path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { type BackendName, readFloatsInto } from '../compute';
import { CIFAR10_IMAGE_BYTES } from '../data';
import { type ModelParts, modelFingerprint } from '../models';
import { ShareThreadError, TrainingShapeError } from './errors';
import type { ShareInput } from './share';
import { ShareSum, type ShareResult } from './share-sum';
import {
  allVariables,
  layoutLength,
  type MicroBatchTask,
  type ShareThreadInit,
  type ThreadMessage,
  unflatten,
  weightLayout,
} from './share-thread-protocol';

/**
 * The pool a process with `threads` compute threads on `backend` computes its shares with; undefined where
 * the share is best computed in the calling thread: one thread, or libtensorflow (tfjs-node), which runs
 * its own thread pool inside each kernel.
 */
export function shareThreadsFor(threads: number, backend: BackendName): ShareThreads | undefined {
  return threads > 1 && backend !== 'tensorflow' ? new ShareThreads(threads) : undefined;
}

/** The thread entry beside this file: share-thread-main.ts under tsx, .js once compiled. */
const THREAD_ENTRY = path.join(__dirname, `share-thread-main${path.extname(__filename)}`);

/**
 * Code a thread starts with. Node 20 runs a worker's entry without the parent's `--import tsx` hooks,
 * so under tsx the entry is required through tsx's CommonJS hook; compiled code requires the .js.
 */
function bootstrap(): string {
  const hook = THREAD_ENTRY.endsWith('.ts') ? `require(${JSON.stringify(require.resolve('tsx/cjs'))});` : '';
  return `${hook}require(${JSON.stringify(THREAD_ENTRY)});`;
}

/** The task a thread is computing. */
interface Pending {
  taskId: number;
  resolve: (result: ShareResult) => void;
  reject: (err: Error) => void;
}

interface ThreadHandle {
  worker: Worker;
  busy: Pending | null;
}

/**
 * A pool of `worker_threads`, each holding a replica of the model, that compute a share's micro-batches in
 * parallel: tfjs-backend-wasm has no threads of its own in Node, so this is how a worker uses its cores.
 * Before each share the main thread writes every weight into one SharedArrayBuffer; each thread loads it
 * (once per share), computes whole micro-batches with `microBatchResult` and sends back their sums, which
 * the main thread adds by the fixed summation tree (`ShareSum`) at the micro-batch's position. A
 * micro-batch's result does not depend on which thread computed it, and the additions are the same in the
 * same tree, so the share is bit-identical to `computeShare` whatever the thread count.
 *
 * Threads start on the first share (with that model's spec) and are rebuilt when the model changes.
 * Shares run one at a time: a call waits for the one before it.
 */
export class ShareThreads {
  private threads: ThreadHandle[] = [];
  private fingerprint = '';
  private init: ShareThreadInit | null = null;
  private generation = 0;
  private nextTaskId = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private broken: Error | null = null;
  private closed = false;

  /** @param count threads computing micro-batches (at least 1) */
  constructor(readonly count: number) {
    if (!(Number.isInteger(count) && count >= 1)) throw new RangeError(`share threads: expected an integer count >= 1, got ${count}`);
  }

  /** `computeShare(parts, input)`, computed by the pool: the same bytes. The caller owns the tensors. */
  computeShare(parts: ModelParts, input: ShareInput): Promise<ShareResult> {
    const run = this.queue.then(() => this.run(parts, input));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Stops the threads; later shares are refused. */
  async close(): Promise<void> {
    this.closed = true;
    await this.stopThreads();
  }

  private async run(parts: ModelParts, input: ShareInput): Promise<ShareResult> {
    if (this.closed) throw new ShareThreadError('the share threads are closed');
    if (this.broken) throw new ShareThreadError(`a share thread failed earlier: ${this.broken.message}`, { cause: this.broken });
    if (input.microBatches.length === 0) throw new TrainingShapeError('share', 'expected at least one micro-batch, got none');
    const tasks = input.microBatches.map((mb, position) => ({ position, task: this.task(input, mb, position) }));
    await this.startFor(parts);
    this.publishWeights(parts);
    tasks.forEach(({ task }) => (task.generation = this.generation));
    const sum = new ShareSum(input.microBatches.length);
    let next = 0;
    let failure: unknown = null;
    // Each thread takes the next micro-batch when it is free; a result goes to its position in the tree.
    const drain = async (thread: ThreadHandle): Promise<void> => {
      while (next < tasks.length && failure === null) {
        const { position, task } = tasks[next++];
        try {
          const result = await this.send(thread, task);
          if (failure === null) sum.add(position, result);
          else tf.dispose([...result.grads.values(), ...result.movingStatDeltas.values()]);
        } catch (err) {
          failure ??= err;
        }
      }
    };
    await Promise.all(this.threads.map(drain));
    if (failure !== null) {
      sum.dispose();
      throw failure;
    }
    return sum.finish();
  }

  /** Hands `task` to an idle thread; resolves with its result. */
  private send(thread: ThreadHandle, task: MicroBatchTask): Promise<ShareResult> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise<ShareResult>((resolve, reject) => {
      thread.busy = { taskId: task.taskId, resolve, reject };
      thread.worker.postMessage(task, [task.images.buffer, task.labels.buffer, task.sampleIds.buffer] as ArrayBuffer[]);
    });
  }

  /** One micro-batch as a task: its images and labels copied out of the share's data. */
  private task(input: ShareInput, mb: ShareInput['microBatches'][number], position: number): MicroBatchTask {
    const n = mb.sampleIndices.length;
    const images = new Uint8Array(n * CIFAR10_IMAGE_BYTES);
    const labels = new Uint8Array(n);
    const sampleIds = new Uint32Array(n);
    mb.sampleIndices.forEach((i, k) => {
      if (!(i < input.data.count)) {
        throw new RangeError(`micro-batch ${mb.id} (position ${position}): sample index ${i} is outside 0..${input.data.count - 1}`);
      }
      images.set(input.data.images.subarray(i * CIFAR10_IMAGE_BYTES, (i + 1) * CIFAR10_IMAGE_BYTES), k * CIFAR10_IMAGE_BYTES);
      labels[k] = input.data.labels[i];
      sampleIds[k] = input.sampleIds ? input.sampleIds[i] : i;
    });
    return {
      type: 'task',
      taskId: this.nextTaskId++,
      generation: 0, // set once the weights are published
      microBatchId: mb.id,
      images,
      labels,
      sampleIds,
      augment: { ...input.augmenter.spec },
      jobSeed: input.jobSeed,
      epoch: input.epoch,
      globalStep: input.globalStep,
      backboneFrozen: input.backboneFrozen,
    };
  }

  /** Writes every weight of `parts` into the shared buffer and moves the generation on. */
  private publishWeights(parts: ModelParts): void {
    const init = this.init as ShareThreadInit;
    const all = new Float32Array(init.weights);
    allVariables(parts).forEach((v, i) => {
      const slot = init.layout[i];
      readFloatsInto(v.read(), all.subarray(slot.offset, slot.offset + slot.length));
    });
    this.generation++;
    Atomics.store(new Int32Array(init.generation), 0, this.generation);
  }

  /** Starts the threads for `parts`' model (again, when the model changed) and waits until each is ready. */
  private async startFor(parts: ModelParts): Promise<void> {
    const fingerprint = modelFingerprint(parts);
    if (fingerprint === this.fingerprint && this.threads.length > 0) return;
    await this.stopThreads();
    const layout = weightLayout(parts);
    const init: ShareThreadInit = {
      backend: tf.getBackend(),
      model: parts.spec,
      layout,
      weights: new SharedArrayBuffer(layoutLength(layout) * Float32Array.BYTES_PER_ELEMENT),
      generation: new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT),
    };
    this.init = init;
    this.fingerprint = fingerprint;
    this.threads = Array.from({ length: this.count }, () => ({ worker: new Worker(bootstrap(), { eval: true, workerData: init }), busy: null }));
    await Promise.all(this.threads.map((thread, index) => this.watch(thread, index)));
  }

  /** Resolves once the thread is ready; routes its answers to its task and fails loudly when it dies. */
  private watch(thread: ThreadHandle, index: number): Promise<void> {
    return new Promise<void>((ready, failed) => {
      const settle = (): Pending | null => {
        const busy = thread.busy;
        thread.busy = null;
        return busy;
      };
      const die = (err: ShareThreadError): void => {
        this.broken ??= err;
        failed(err); // no-op once ready
        settle()?.reject(err);
      };
      thread.worker.on('message', (m: ThreadMessage) => {
        if (m.type === 'ready') {
          ready();
        } else if (m.type === 'result') {
          if (thread.busy?.taskId !== m.taskId) {
            die(new ShareThreadError(`share thread ${index} answered task ${m.taskId}, expected ${thread.busy?.taskId ?? 'none'}`));
            return;
          }
          const { lossSum, correctTop1, correctTop5, count } = m;
          const result = { grads: unflatten(m.grads), movingStatDeltas: unflatten(m.movingStatDeltas), lossSum, correctTop1, correctTop5, count, microBatches: 1 };
          settle()?.resolve(result);
        } else {
          const cause = Object.assign(new Error(m.message), { name: m.name, stack: m.stack });
          const err = new ShareThreadError(`share thread ${index}: ${m.name}: ${m.message}`, { cause });
          if (m.taskId === undefined) die(err);
          else settle()?.reject(err);
        }
      });
      thread.worker.on('error', (err) => die(new ShareThreadError(`share thread ${index} crashed: ${err.message}`, { cause: err })));
      thread.worker.on('exit', (code) => {
        if (this.threads.includes(thread)) die(new ShareThreadError(`share thread ${index} exited with code ${code}`));
      });
    });
  }

  private async stopThreads(): Promise<void> {
    const threads = this.threads;
    this.threads = [];
    this.fingerprint = '';
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }
}
