// Where a MobileNet training step spends its time, per kernel, on the selected backend.
// Usage: node --import tsx bench/compute-profile.ts [size=32] [batch=32] [steps=3]
// Prints the step's phases (forward+backward, gradient sums, optimizer), then kernels by self time.
// tf.profile counts a composed kernel's inner kernels twice; this wraps every registered kernel
// of the backend and reports self time (own time minus time in nested kernels) instead.
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common';
import { createTrainingBench, medianMs } from './compute-train-step';

interface KernelStats {
  selfMs: number;
  calls: number;
}

/** Wraps each kernel of `backendName` to accumulate self time; returns the live statistics. */
function instrumentKernels(backendName: string): Map<string, KernelStats> {
  const stats = new Map<string, KernelStats>();
  const childMs: number[] = [];
  for (const config of tf.getKernelsForBackend(backendName)) {
    const inner = config.kernelFunc;
    tf.unregisterKernel(config.kernelName, backendName);
    tf.registerKernel({
      ...config,
      kernelFunc: (args) => {
        childMs.push(0);
        const start = performance.now();
        const out = inner(args);
        const total = performance.now() - start;
        const nested = childMs.pop() ?? 0;
        if (childMs.length > 0) childMs[childMs.length - 1] += total;
        const entry = stats.get(config.kernelName) ?? { selfMs: 0, calls: 0 };
        entry.selfMs += total - nested;
        entry.calls += 1;
        stats.set(config.kernelName, entry);
        return out;
      },
    });
  }
  return stats;
}

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
  const rows = [...stats.entries()].sort((a, b) => b[1].selfMs - a[1].selfMs);
  const kernelMs = rows.reduce((sum, [, s]) => sum + s.selfMs, 0) / steps;
  console.log(`profile backend=${backend.name} size=${size} batch=${batch} step_ms=${stepMs.toFixed(1)} ` +
    `kernel_ms=${kernelMs.toFixed(1)} outside_kernels_ms=${(stepMs - kernelMs).toFixed(1)}`);
  console.log(`phases (mean per step, uninstrumented) ${phaseLine} step_cpu_ms=${stepCpuMs.toFixed(1)}`);
  for (const [name, s] of rows.slice(0, 30)) {
    console.log(`  ${name.padEnd(36)} ${(s.selfMs / steps).toFixed(2).padStart(8)} ms ${String(s.calls / steps).padStart(6)} calls`);
  }
  bench.dispose();
}

void main();
