// Kernel self time for the profiles (compute-profile.ts, compute-profile-trainer.ts). tf.profile counts a
// composed kernel's inner kernels twice; this wraps every registered kernel of the backend and reports self
// time (own time minus time in nested kernels) instead.
import * as tf from '@tensorflow/tfjs';

/** Self time and calls of one kernel. */
export interface KernelStats {
  selfMs: number;
  calls: number;
}

/** Wraps each kernel of `backendName` to accumulate self time; returns the live statistics. */
export function instrumentKernels(backendName: string): Map<string, KernelStats> {
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

/** Prints the `top` kernels by self time, per step over `steps` steps. */
export function printKernels(stats: ReadonlyMap<string, KernelStats>, steps: number, top = 30): void {
  const rows = [...stats.entries()].sort((a, b) => b[1].selfMs - a[1].selfMs);
  for (const [name, s] of rows.slice(0, top)) {
    console.log(`  ${name.padEnd(36)} ${(s.selfMs / steps).toFixed(2).padStart(8)} ms ${String(s.calls / steps).padStart(6)} calls`);
  }
}

/** Total self time per step over `steps` steps. */
export function kernelMsPerStep(stats: ReadonlyMap<string, KernelStats>, steps: number): number {
  return [...stats.values()].reduce((sum, s) => sum + s.selfMs, 0) / steps;
}
