// Training and forward images/s of the MobileNet v1 backbone (+ pooling + dense 10 head) on the
// selected backend and on the plain cpu backend, batch 32, inputs 32x32 and 64x64.
// Usage: node --import tsx bench/compute.ts [--skip-cpu]   (make bench-compute)
// One stdout line per backend and size:
//   bench-compute backend=wasm size=32 batch=32 train_img_per_s=... fwd_img_per_s=...
// Reference (PyTorch CPU, 1 thread, same architecture, same machine class): ~250 img/s training
// at 32x32, ~150 at 64x64 (/work/shared/peers/torch_mobilenet_speed.py).
import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendName } from '../common';
import { createTrainingBench, medianMs } from './compute-train-step';

const BATCH = 32;
const SIZES = [32, 64];

interface Plan {
  /** Untimed calls first (tfjs builds kernels and XNNPACK operators on first use). */
  warmup: number;
  trainSteps: number;
  forwardRuns: number;
}

// The cpu backend takes seconds per step: one timed call, no warm-up, is all it gets.
const PLANS: Record<'fast' | 'cpu', Plan> = {
  fast: { warmup: 2, trainSteps: 6, forwardRuns: 10 },
  cpu: { warmup: 0, trainSteps: 1, forwardRuns: 1 },
};

async function measure(backend: BackendName, size: number, plan: Plan): Promise<void> {
  const bench = await createTrainingBench(size, BATCH);
  try {
    const trainMs = medianMs(() => bench.trainStep(), plan.trainSteps, plan.warmup);
    const forwardMs = medianMs(() => bench.forward(), plan.forwardRuns, plan.warmup > 0 ? 1 : 0);
    const perSecond = (ms: number) => ((BATCH * 1000) / ms).toFixed(1);
    console.log(
      `bench-compute backend=${backend} size=${size} batch=${BATCH} ` +
        `train_img_per_s=${perSecond(trainMs)} fwd_img_per_s=${perSecond(forwardMs)}`,
    );
    process.stderr.write(`  (backbone: ${bench.source}; median of ${plan.trainSteps} timed training steps; ${tf.memory().numTensors} tensors live)\n`);
  } finally {
    bench.dispose();
  }
}

async function main(): Promise<void> {
  const selected = await initBackend();
  for (const size of SIZES) await measure(selected.name, size, PLANS.fast);
  if (process.argv.includes('--skip-cpu') || selected.name === 'cpu') return;
  await initBackend({ prefer: 'cpu' });
  for (const size of SIZES) await measure('cpu', size, PLANS.cpu);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
