// Where the trainers' own step spends its time, per kernel: localTrainStep (augmentation, the MobileNet at
// SIZE, two micro-batches of 16 with their BatchNorm statistics, the summation tree, the fused Adam), the
// step `make bench-compute`'s bench-compute-threads lines time with 1 thread, on random images.
// Usage: node --import tsx bench/compute-profile-trainer.ts [--size 64] [--steps 3]
// Prints `profile-trainer size=.. step_ms=.. step_cpu_ms=.. kernel_ms=.. kernel_calls=..` (CPU time is the
// steadier figure on a shared machine), then kernels by self time (kernel-self-time.ts).
import { Command } from 'commander';
import { initBackend, localTrainStep } from '../common';
import { instrumentKernels, kernelMsPerStep, printKernels } from './kernel-self-time';
import { TRAINER_BATCH, trainerBench } from './trainer-bench';

const WARMUP_STEPS = 2;

async function main(): Promise<void> {
  const opts = new Command()
    .option('--size <n>', 'input side', (v) => Number.parseInt(v, 10), 64)
    .option('--steps <n>', 'timed steps (means are printed)', (v) => Number.parseInt(v, 10), 3)
    .parse()
    .opts<{ size: number; steps: number }>();
  const backend = await initBackend({ log: () => undefined });
  const bench = await trainerBench('profile-trainer', opts.size);
  const { state, train, indices, augmenter, metrics } = bench;
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
    console.log(`profile-trainer size=${opts.size} batch=${TRAINER_BATCH} step_ms=${stepMs.toFixed(1)} ` +
      `step_cpu_ms=${((cpu.user + cpu.system) / 1000 / opts.steps).toFixed(1)} kernel_ms=${kernelMsPerStep(stats, opts.steps).toFixed(1)} kernel_calls=${calls}`);
    printKernels(stats, opts.steps);
  } finally {
    bench.dispose();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
