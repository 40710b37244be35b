// Where the trainers' step spends its time with 1 and N compute threads: the share (forward and backward of
// the micro-batches, in this thread or in the pool, with the pool's weight copies and messages) and the
// update (gradient means, optimizer, BatchNorm statistics), in wall time and in this process's CPU time
// (all threads), which is the steadier figure on a shared machine.
// Usage: node --import tsx bench/compute-profile-threads.ts [--size 64] [--threads 1,2] [--steps 5]
// One line per thread count:
//   profile-threads size=64 threads=2 step_ms=... share_ms=... update_ms=... cpu_ms=... speedup=...
// speedup is the 1-thread step time over this one; the update runs in this thread whatever the count.
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import {
  applyGradientSums,
  applyMovingStatDeltas,
  computeShare,
  cutMicroBatches,
  initBackend,
  type ShareInput,
  ShareThreads,
} from '../common';
import { TRAINER_BATCH, TRAINER_MICRO_BATCH, trainerBench } from './trainer-bench';

const WARMUP_STEPS = 2;

interface Timing {
  stepMs: number;
  shareMs: number;
  updateMs: number;
  cpuMs: number;
}

async function main(): Promise<void> {
  const opts = new Command()
    .option('--size <n>', 'input side', (v) => Number.parseInt(v, 10), 64)
    .option('--threads <list>', 'thread counts, comma-separated', (v) => v.split(',').map(Number), [1, 2])
    .option('--steps <n>', 'timed steps per thread count (means are printed)', (v) => Number.parseInt(v, 10), 5)
    .parse()
    .opts<{ size: number; threads: number[]; steps: number }>();
  await initBackend({ log: () => undefined });
  const bench = await trainerBench('profile-threads', opts.size);
  const { spec, parts, state, train: data, augmenter } = bench;
  const input = (): ShareInput => ({
    data,
    microBatches: cutMicroBatches(Uint32Array.from({ length: TRAINER_BATCH }, (_, i) => i), TRAINER_MICRO_BATCH),
    augmenter,
    jobSeed: spec.seed,
    epoch: 0,
    globalStep: state.globalStep,
    backboneFrozen: false,
  });
  const profile = async (threads: number): Promise<Timing> => {
    const pool = threads > 1 ? new ShareThreads(threads) : undefined;
    const sum: Timing = { stepMs: 0, shareMs: 0, updateMs: 0, cpuMs: 0 };
    try {
      for (let i = 0; i < WARMUP_STEPS + opts.steps; i++) {
        const [cpu0, t0] = [process.cpuUsage(), performance.now()];
        const result = pool ? await pool.computeShare(parts, input()) : computeShare(parts, input());
        const t1 = performance.now();
        applyGradientSums(state, result.grads, result.count);
        applyMovingStatDeltas(parts, result.movingStatDeltas, result.microBatches);
        tf.dispose([...result.grads.values(), ...result.movingStatDeltas.values()]);
        const [t2, cpu] = [performance.now(), process.cpuUsage(cpu0)];
        if (i < WARMUP_STEPS) continue;
        sum.stepMs += t2 - t0;
        sum.shareMs += t1 - t0;
        sum.updateMs += t2 - t1;
        sum.cpuMs += (cpu.user + cpu.system) / 1000;
      }
    } finally {
      await pool?.close();
    }
    return { stepMs: sum.stepMs / opts.steps, shareMs: sum.shareMs / opts.steps, updateMs: sum.updateMs / opts.steps, cpuMs: sum.cpuMs / opts.steps };
  };
  let single: number | undefined;
  for (const threads of opts.threads) {
    const t = await profile(threads);
    single ??= threads === 1 ? t.stepMs : undefined;
    const speedup = single !== undefined ? (single / t.stepMs).toFixed(2) : 'n/a';
    console.log(`profile-threads size=${opts.size} threads=${threads} step_ms=${t.stepMs.toFixed(1)} share_ms=${t.shareMs.toFixed(1)} ` +
      `update_ms=${t.updateMs.toFixed(1)} cpu_ms=${t.cpuMs.toFixed(1)} speedup=${speedup}`);
  }
  bench.dispose();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
