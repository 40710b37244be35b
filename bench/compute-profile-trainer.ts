// Where the trainers' own step spends its time, per kernel: localTrainStep (augmentation, the MobileNet at
// SIZE, two micro-batches of 16 with their BatchNorm statistics, the summation tree, the fused Adam), the
// step `make bench-compute`'s bench-compute-threads lines time with 1 thread, on random images.
// Usage: node --import tsx bench/compute-profile-trainer.ts [--size 64] [--steps 3]
// Prints `profile-trainer size=.. step_ms=.. step_cpu_ms=.. kernel_ms=.. kernel_calls=..` (CPU time is the
// steadier figure on a shared machine), then kernels by self time (kernel-self-time.ts).
import { Command } from 'commander';
import {
  Augmenter, beginEpoch, buildModel, ClassificationMetrics, createTrainerState, disposeModelParts, disposeTrainerState,
  initBackend, localTrainStep, parseJobSpec, Rng,
} from '../common';
import { instrumentKernels, kernelMsPerStep, printKernels } from './kernel-self-time';

const BATCH = 32;
const WARMUP_STEPS = 2;

async function main(): Promise<void> {
  const opts = new Command()
    .option('--size <n>', 'input side', (v) => Number.parseInt(v, 10), 64)
    .option('--steps <n>', 'timed steps (means are printed)', (v) => Number.parseInt(v, 10), 3)
    .parse()
    .opts<{ size: number; steps: number }>();
  const backend = await initBackend({ log: () => undefined });
  const spec = parseJobSpec([
    'name: profile-trainer',
    `model: { architecture: mobilenet_v1, pretrained: true, inputSize: ${opts.size}, head: linear }`,
    `training: { epochs: 1, batchSize: ${BATCH}, microBatchSize: 16 }`,
    'optimizer: { type: adam, learningRate: 0.0001 }',
    'freeze: { backboneEpochs: 0 }',
  ].join('\n'));
  const parts = await buildModel(spec.model, spec.seed);
  const state = createTrainerState(spec, parts, 1_000_000);
  beginEpoch(state, 0);
  const rng = new Rng(opts.size);
  const train = {
    images: Uint8Array.from({ length: BATCH * 32 * 32 * 3 }, () => rng.int(256)),
    labels: Uint8Array.from({ length: BATCH }, () => rng.int(10)),
    count: BATCH,
  };
  const indices = Uint32Array.from({ length: BATCH }, (_, i) => i);
  const augmenter = new Augmenter(spec.data.augment);
  const metrics = new ClassificationMetrics(spec.model.numClasses);
  const steps = (n: number): void => {
    for (let i = 0; i < n; i++) localTrainStep(state, train, indices, augmenter, metrics);
  };
  try {
    steps(WARMUP_STEPS); // tfjs builds kernels and XNNPACK operators on first use
    const [cpu0, t0] = [process.cpuUsage(), performance.now()];
    steps(opts.steps);
    const cpu = process.cpuUsage(cpu0);
    const stepMs = (performance.now() - t0) / opts.steps;
    const stats = instrumentKernels(backend.name);
    steps(opts.steps);
    const calls = [...stats.values()].reduce((sum, s) => sum + s.calls, 0) / opts.steps;
    console.log(`profile-trainer size=${opts.size} batch=${BATCH} step_ms=${stepMs.toFixed(1)} ` +
      `step_cpu_ms=${((cpu.user + cpu.system) / 1000 / opts.steps).toFixed(1)} kernel_ms=${kernelMsPerStep(stats, opts.steps).toFixed(1)} kernel_calls=${calls}`);
    printKernels(stats, opts.steps);
  } finally {
    disposeTrainerState(state);
    disposeModelParts(parts);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
