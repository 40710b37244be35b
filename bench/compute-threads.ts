// The trainers' step with 1 and 2 compute threads (ShareThreads), beside PyTorch with as many threads, in
// the same run: part of `make bench-compute`. The step is the single-process trainer's own
// (localTrainStep / localTrainStepOn: augmentation, the MobileNet at SIZE upsampled from CIFAR-sized
// images, two micro-batches of 16, the summation tree, Adam, BatchNorm statistics), on random images.
// The PyTorch peer pins one thread, so bench/torch_threads.py runs it unchanged with N.
// One line per size and thread count, medians over the repetitions:
//   bench-compute-threads size=64 batch=32 threads=2 reps=R train_img_s=... torch_threads=2 torch_train_img_s=... ratio=...
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { localTrainStep, localTrainStepOn, ShareThreads, type StepEvent } from '../common';
import { TRAINER_BATCH, trainerBench } from './trainer-bench';

const TORCH_PEER = path.resolve(__dirname, '../../shared/peers/torch_mobilenet_speed.py');
const TORCH_THREADS = path.resolve(__dirname, 'torch_threads.py');
const PYTHON = '/usr/bin/python3';
const WARMUP_STEPS = 2;
const TIMED_STEPS = 5;
const execFileAsync = promisify(execFile);

/** Training img/s of PyTorch with `threads` intra-op threads (the peer's own measurement). */
async function torchRate(size: number, threads: number): Promise<number> {
  const { stdout } = await execFileAsync(PYTHON, [TORCH_THREADS, String(threads), TORCH_PEER, String(size), String(TRAINER_BATCH)]);
  const match = /train_img_per_s=([0-9.]+)/.exec(stdout);
  if (!match) throw new Error(`torch peer: expected 'train_img_per_s=<number>' in its output, got '${stdout.trim()}'`);
  return Number(match[1]);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Times the trainer's step at `size` with each thread count in `threadCounts`, each beside PyTorch with as
 * many threads, `reps` times; prints the per-repetition pairs on `#` lines and one summary line per count.
 */
export async function compareThreads(size: number, threadCounts: readonly number[], reps: number): Promise<void> {
  const bench = await trainerBench('bench-threads', size);
  const { state, train, indices, augmenter, metrics } = bench;
  const pools = new Map(threadCounts.filter((n) => n > 1).map((n) => [n, new ShareThreads(n)]));
  const step = (threads: number): Promise<StepEvent> | StepEvent => {
    const pool = pools.get(threads);
    return pool ? localTrainStepOn(pool, state, train, indices, augmenter, metrics) : localTrainStep(state, train, indices, augmenter, metrics);
  };
  /** Training img/s: the median step time over TIMED_STEPS steps after WARMUP_STEPS (threads start in the first). */
  const oursRate = async (threads: number): Promise<number> => {
    const times: number[] = [];
    for (let i = 0; i < WARMUP_STEPS + TIMED_STEPS; i++) {
      const t0 = performance.now();
      await step(threads); // moves state.globalStep on, so every step draws new dropout masks
      if (i >= WARMUP_STEPS) times.push(performance.now() - t0);
    }
    return (TRAINER_BATCH * 1000) / median(times);
  };
  const rows = new Map(threadCounts.map((n) => [n, { ours: [] as number[], torch: [] as number[] }]));
  try {
    for (let rep = 0; rep < reps; rep++) {
      for (const threads of threadCounts) {
        const row = rows.get(threads) as { ours: number[]; torch: number[] };
        row.ours.push(await oursRate(threads));
        row.torch.push(await torchRate(size, threads));
        const [ours, torch] = [row.ours[rep], row.torch[rep]];
        console.log(`# rep=${rep + 1} size=${size} threads=${threads} train_img_s=${ours.toFixed(1)} torch_train_img_s=${torch.toFixed(1)} ratio=${(ours / torch).toFixed(2)}`);
      }
    }
    for (const [threads, row] of rows) {
      // As in compute.ts: the ratio is the median of each repetition's back-to-back ratio.
      const ratio = median(row.ours.map((r, i) => r / row.torch[i]));
      console.log(
        `bench-compute-threads size=${size} batch=${TRAINER_BATCH} threads=${threads} reps=${reps} train_img_s=${median(row.ours).toFixed(1)} ` +
          `torch_threads=${threads} torch_train_img_s=${median(row.torch).toFixed(1)} ratio=${ratio.toFixed(2)}`,
      );
    }
  } finally {
    await Promise.all([...pools.values()].map((p) => p.close()));
    bench.dispose();
  }
}
