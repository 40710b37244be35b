/**
 * fp16 gradients' accuracy bound on the shared subset (issue 12, item 3): bench-tta's recipe on shardwise
 * alone (coordinator + 2 workers, the same held-out images), run twice back to back with the same seed, first
 * with `distributed.compression: none` (float32 frames, bit-exact to the single-process trainer), then with
 * `fp16`. The bound: held-out top-1 within 1 point and final held-out loss within 2% of the float32 run's.
 * The recipe is shortened to 1 frozen + 2 unfrozen epochs by default (both runs in about 15 minutes on a
 * loaded 2-core machine); `--epochs 8 --frozen 3` runs bench-tta's whole schedule.
 *
 *   node --import tsx bench/fp16-bound.ts [--data DIR] [--epochs 3] [--frozen 1] [--prescale 1] [--backend NAME]
 *
 * Prints one `bench-fp16` line (top-1 in percent, losses, their differences, `bound=met|missed`) with `#`
 * lines for each run's epochs. Exits 1 when the bound is missed, so `make bench-fp16` fails loudly.
 * BENCH_DEBUG=1 forwards every process's output to stderr.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { runTtaCluster, stopOnInterrupt } from './tta-cluster';
import { checkSameImagesAsPeer, PEER_DATA_DIR, TTA_WORKERS, type TtaSchedule, ttaJobYaml, writeHoldoutFile } from './tta-inputs';

/** The bound: top-1 points and relative final loss against the float32 run. */
const MAX_TOP1_POINTS = 1;
const MAX_LOSS_RELATIVE = 0.02;
/** The peer's per-process batch, as bench-tta uses by default. */
const MICRO_BATCH = 32;

function integer(flag: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${flag}: expected an integer >= ${min}, got '${value}'`);
    return n;
  };
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`--prescale: expected a positive number, got '${value}'`);
  return n;
}

async function main(): Promise<void> {
  const opts = new Command('bench-fp16')
    .option('--data <dir>', 'CIFAR-10 folder: the shared subset or a copy of it', PEER_DATA_DIR)
    .option('--epochs <n>', 'epochs of each run', integer('--epochs', 2), 3)
    .option('--frozen <n>', 'of them with the backbone frozen', integer('--frozen', 0), 1)
    .option('--prescale <x>', 'distributed.prescaleFactor of the fp16 run', positiveNumber, 1)
    .option('--backend <name>', 'compute backend of every shardwise process')
    .parse(process.argv)
    .opts<{ data: string; epochs: number; frozen: number; prescale: number; backend?: string }>();
  if (opts.frozen >= opts.epochs) throw new Error(`--frozen: expected fewer than --epochs (${opts.epochs}), got ${opts.frozen}`);
  checkSameImagesAsPeer(opts.data);
  const schedule: TtaSchedule = { epochs: opts.epochs, frozen: opts.frozen };
  const dir = mkdtempSync(path.join(tmpdir(), 'shardwise-bench-fp16-'));
  const track = stopOnInterrupt(() => rmSync(dir, { recursive: true, force: true }));
  try {
    const output = process.env.BENCH_DEBUG === '1' ? (line: string) => process.stderr.write(`${line}\n`) : undefined;
    const run = async (compression: 'none' | 'fp16') => {
      const yaml = ttaJobYaml(MICRO_BATCH, compression, schedule, opts.prescale);
      const job = path.join(dir, `${compression}.yaml`);
      writeFileSync(job, yaml);
      const split = await writeHoldoutFile(yaml, opts.data, path.join(dir, 'holdout.json'));
      const result = await runTtaCluster({ job, dataDir: opts.data, runsDir: path.join(dir, `runs-${compression}`), timeline: path.join(dir, `${compression}.timeline.json`),
        backend: opts.backend, output, track, schedule });
      const last = result.epochs[result.epochs.length - 1];
      console.log(`# ${compression}: ${split.train} training, ${split.val} held-out images; epochs (s, held-out top-1, loss): ` +
        result.epochs.map((e) => `${e.epoch}${e.frozen ? 'f' : 'u'} ${e.seconds.toFixed(1)} (${(100 * e.top1).toFixed(1)}%, ${e.loss.toFixed(4)})`).join(', '));
      return { top1: 100 * last.top1, loss: last.loss, wall: result.wallSeconds };
    };
    console.log(`# bench-fp16: bench-tta's recipe with ${TTA_WORKERS} workers, ${opts.frozen} frozen + ${opts.epochs - opts.frozen} unfrozen epochs, ` +
      `compression none then fp16 (prescale ${opts.prescale}); bound: top-1 within ${MAX_TOP1_POINTS} point, final loss within ${100 * MAX_LOSS_RELATIVE}%`);
    const fp32 = await run('none');
    const fp16 = await run('fp16');
    const top1Diff = fp16.top1 - fp32.top1;
    const lossRel = (fp16.loss - fp32.loss) / fp32.loss;
    const met = Math.abs(top1Diff) <= MAX_TOP1_POINTS && Math.abs(lossRel) <= MAX_LOSS_RELATIVE;
    console.log(`bench-fp16 workers=${TTA_WORKERS} epochs=${opts.epochs} frozen=${opts.frozen} prescale=${opts.prescale} ` +
      `none_top1=${fp32.top1.toFixed(1)} fp16_top1=${fp16.top1.toFixed(1)} top1_diff=${top1Diff.toFixed(1)} ` +
      `none_loss=${fp32.loss.toFixed(4)} fp16_loss=${fp16.loss.toFixed(4)} loss_rel=${lossRel.toFixed(4)} ` +
      `none_wall_s=${fp32.wall.toFixed(1)} fp16_wall_s=${fp16.wall.toFixed(1)} bound=${met ? 'met' : 'missed'}`);
    if (!met) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
