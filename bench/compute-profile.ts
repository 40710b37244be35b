// Where a MobileNet training step spends its time, per kernel, on the selected backend.
// Usage: node --import tsx bench/compute-profile.ts [size=32] [batch=32] [steps=3]
// Prints the step's phases (forward+backward, gradient sums, optimizer), then kernels by self time.
// Kernel times are self times (kernel-self-time.ts). The trainers' own step: compute-profile-trainer.ts.
import { initBackend } from '../common';
import { createTrainingBench, medianMs } from './compute-train-step';
import { instrumentKernels, kernelMsPerStep, printKernels } from './kernel-self-time';

async function main(): Promise<void> {
  const [size, batch, steps] = [process.argv[2] ?? '32', process.argv[3] ?? '32', process.argv[4] ?? '3'].map(Number);
  const backend = await initBackend();
  const bench = await createTrainingBench(size, batch);
  medianMs(() => bench.trainStep(), 0, 2); // warm-up: tfjs builds kernels and XNNPACK operators on first use
  Object.assign(bench.phases, { forwardBackwardMs: 0, gradientSumMs: 0, optimizerMs: 0 });
  // CPU time as well as wall time: on a shared machine it is the steadier of the two.
  const cpuStart = process.cpuUsage();
  const stepMs = medianMs(() => bench.trainStep(), steps, 0);
  const cpu = process.cpuUsage(cpuStart);
  const stepCpuMs = (cpu.user + cpu.system) / 1000 / steps;
  const phaseLine = Object.entries(bench.phases).map(([k, ms]) => `${k.replace(/Ms$/, '_ms')}=${(ms / steps).toFixed(1)}`).join(' ');
  const stats = instrumentKernels(backend.name);
  medianMs(() => bench.trainStep(), steps, 0);
  const kernelMs = kernelMsPerStep(stats, steps);
  console.log(`profile backend=${backend.name} size=${size} batch=${batch} step_ms=${stepMs.toFixed(1)} ` +
    `kernel_ms=${kernelMs.toFixed(1)} outside_kernels_ms=${(stepMs - kernelMs).toFixed(1)}`);
  console.log(`phases (mean per step, uninstrumented) ${phaseLine} step_cpu_ms=${stepCpuMs.toFixed(1)}`);
  printKernels(stats, steps);
  bench.dispose();
}

void main();
