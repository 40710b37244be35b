// Training and forward images/s of the MobileNet v1 backbone (+ pooling + dense 10 head) on the
// selected backend, beside PyTorch on the same machine in the same run, at 32x32 and 64x64.
// Usage: node --import tsx bench/compute.ts [--reps N] [--sizes 32,64] [--threads 1,2] [--with-cpu]   (make bench-compute)
// Each repetition times shardwise's step (batch 32 as two micro-batches of 16, summed gradients, our
// Adam: what the trainers run), then ../shared/peers/torch_mobilenet_speed.py (1 thread, batch 32, one
// BatchNorm batch), one after the other so they never compete for the cores. One stdout line per
// backend and size, medians over the repetitions:
//   bench-compute backend=wasm size=64 batch=32 train_img_s=... fwd_img_s=... torch_train_img_s=...
//     torch_fwd_img_s=... ratio=...   (ratio: median over repetitions of shardwise / PyTorch training img/s)
// Then the trainers' step with 1 and 2 compute threads beside PyTorch with as many (compute-threads.ts):
//   bench-compute-threads size=64 batch=32 threads=2 ... torch_threads=2 torch_train_img_s=... ratio=...
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendName } from '../common';
import { compareThreads } from './compute-threads';
import { createTrainingBench, medianMs } from './compute-train-step';

const BATCH = 32;
const SIZES = [32, 64];
const TORCH_PEER = path.resolve(__dirname, '../../shared/peers/torch_mobilenet_speed.py');
const PYTHON = '/usr/bin/python3';

interface Plan {
  /** Untimed calls first (tfjs builds kernels and XNNPACK operators on first use). */
  warmup: number;
  trainSteps: number;
  forwardRuns: number;
}

// The cpu backend takes seconds per step: one timed call, no warm-up, is all it gets.
const PLANS: Record<'fast' | 'cpu', Plan> = {
  fast: { warmup: 2, trainSteps: 5, forwardRuns: 8 },
  cpu: { warmup: 0, trainSteps: 1, forwardRuns: 1 },
};

interface Rates {
  train: number;
  forward: number;
}

async function measureOurs(size: number, plan: Plan): Promise<Rates> {
  const bench = await createTrainingBench(size, BATCH);
  try {
    const trainMs = medianMs(() => bench.trainStep(), plan.trainSteps, plan.warmup);
    const forwardMs = medianMs(() => bench.forward(), plan.forwardRuns, plan.warmup > 0 ? 1 : 0);
    process.stderr.write(`  (backbone: ${bench.source}; ${tf.memory().numTensors} tensors live)\n`);
    return { train: (BATCH * 1000) / trainMs, forward: (BATCH * 1000) / forwardMs };
  } finally {
    bench.dispose();
  }
}

const execFileAsync = promisify(execFile);

/** Runs the PyTorch peer once; its line is `torch size=S batch=B train_img_per_s=X fwd_img_per_s=Y`. */
async function measureTorch(size: number): Promise<Rates> {
  const { stdout } = await execFileAsync(PYTHON, [TORCH_PEER, String(size), String(BATCH)]);
  const field = (key: string): number => {
    const match = new RegExp(`${key}=([0-9.]+)`).exec(stdout);
    if (!match) throw new Error(`torch peer: expected '${key}=<number>' in its output, got '${stdout.trim()}'`);
    return Number(match[1]);
  };
  return { train: field('train_img_per_s'), forward: field('fwd_img_per_s') };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function compare(backend: BackendName, size: number, plan: Plan, reps: number): Promise<void> {
  const ours: Rates[] = [];
  const torch: Rates[] = [];
  for (let rep = 0; rep < reps; rep++) {
    ours.push(await measureOurs(size, plan));
    torch.push(await measureTorch(size));
    const last = (r: Rates[]) => r[r.length - 1];
    console.log(`# rep=${rep + 1} size=${size} train_img_s=${last(ours).train.toFixed(1)} ` +
      `torch_train_img_s=${last(torch).train.toFixed(1)} ratio=${(last(ours).train / last(torch).train).toFixed(2)}`);
  }
  // The ratio is the median of each repetition's ratio: the two runs of a repetition are back to back,
  // so they share the machine's load, which the medians of each side over the whole run do not.
  const ratio = median(ours.map((r, i) => r.train / torch[i].train));
  const m = (rates: Rates[], key: keyof Rates) => median(rates.map((r) => r[key]));
  console.log(
    `bench-compute backend=${backend} size=${size} batch=${BATCH} reps=${reps} ` +
      `train_img_s=${m(ours, 'train').toFixed(1)} fwd_img_s=${m(ours, 'forward').toFixed(1)} ` +
      `torch_train_img_s=${m(torch, 'train').toFixed(1)} torch_fwd_img_s=${m(torch, 'forward').toFixed(1)} ` +
      `ratio=${ratio.toFixed(2)}`,
  );
}

async function main(): Promise<void> {
  const opts = new Command()
    .option('--reps <n>', 'repetitions per size (medians are printed)', (v) => Number.parseInt(v, 10), 5)
    .option('--sizes <list>', 'input sizes, comma-separated', (v) => v.split(',').map(Number), SIZES)
    .option('--with-cpu', 'also time the plain-JS cpu backend (seconds per step)')
    .option('--threads <list>', 'compute thread counts of the trainer-step lines, comma-separated (empty: none)',
      (v) => v.split(',').filter(Boolean).map(Number), [1, 2])
    .parse()
    .opts<{ reps: number; sizes: number[]; withCpu?: boolean; threads: number[] }>();
  if (!(opts.reps >= 1)) throw new Error(`--reps: expected an integer >= 1, got ${opts.reps}`);
  const selected = await initBackend();
  for (const size of opts.sizes) await compare(selected.name, size, PLANS.fast, opts.reps);
  if (opts.threads.length > 0) for (const size of opts.sizes) await compareThreads(size, opts.threads, opts.reps);
  if (!opts.withCpu || selected.name === 'cpu') return;
  await initBackend({ prefer: 'cpu' });
  for (const size of opts.sizes) await compare('cpu', size, PLANS.cpu, 1);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
