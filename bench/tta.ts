/**
 * Time to accuracy against PyTorch: the fine-tuning recipe of the issue (ImageNet MobileNet v1 at 64x64, 3
 * frozen + 5 unfrozen epochs, global batch 64, Adam 1e-3 head / 1e-4 backbone, weight decay 1e-4, crop and
 * flip, 10% held out) run by shardwise with a coordinator and 2 worker processes on loopback, then by
 * ../shared/peers/torch_finetune.py with 2 processes and gloo, holding out the same images (shardwise's
 * validation indices, passed with --holdout-file). One after the other, never side by side.
 *
 *   node --import tsx bench/tta.ts [--data DIR] [--micro-batch 32] [--compression none|fp16] [--backend auto|wasm|cpu] [--skip-peer]
 *
 * Prints `bench-tta workers=2 epochs=8 wall_s=W val_top1=A peer_wall_s=P peer_top1=B ratio=W/P` (top-1 in
 * percent of the held-out images after the last epoch), with `#` lines: each epoch's time on both sides,
 * and from shardwise's timeline (--timeline on every process) the time of an average unfrozen step by
 * phase on the coordinator and the workers. BENCH_DEBUG=1 forwards every process's output to stderr;
 * BENCH_KEEP=1 keeps the temp folder (job, holdout file, run directory, timeline).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import * as path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { breakdownTable, phaseBreakdown } from './tta-breakdown';
import { runTtaCluster, stopOnInterrupt } from './tta-cluster';
import { checkSameImagesAsPeer, type EpochTime, PEER_DATA_DIR, TTA_BATCH, TTA_EPOCHS, TTA_WORKERS, ttaJobYaml, writeHoldoutFile } from './tta-inputs';
import { runPeer } from './tta-peer';

function microBatch(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || TTA_BATCH % n !== 0) throw new InvalidArgumentError(`expected a divisor of ${TTA_BATCH}, got '${value}'`);
  return n;
}

const pct = (fraction: number): string => (100 * fraction).toFixed(1);
/** The 1-minute load average: other jobs on the machine slow one side and not the other. */
const load = (): string => loadavg()[0].toFixed(1);

function epochLine(side: string, epochs: readonly EpochTime[]): string {
  return `# ${side} epochs (s, f frozen, u unfrozen, held-out top-1): ${epochs.map((e) => `${e.epoch}${e.frozen ? 'f' : 'u'} ${e.seconds.toFixed(1)} (${pct(e.top1)}%)`).join(', ')}`;
}

async function main(): Promise<void> {
  const opts = new Command('bench-tta')
    .option('--data <dir>', 'CIFAR-10 folder: the peer\'s images or a copy of them', PEER_DATA_DIR)
    .option('--micro-batch <n>', 'shardwise micro-batch (the BatchNorm span); 32 is the peer\'s batch per process', microBatch, 32)
    .addOption(new Option('--compression <mode>', 'the data plane\'s frames (distributed.compression)').choices(['none', 'fp16']).default('none'))
    .option('--backend <name>', 'compute backend of every shardwise process')
    .option('--skip-peer', 'run shardwise only (no ratio)')
    .parse(process.argv)
    .opts<{ data: string; microBatch: number; compression: 'none' | 'fp16'; backend?: string; skipPeer?: boolean }>();
  checkSameImagesAsPeer(opts.data);
  const dir = mkdtempSync(path.join(tmpdir(), 'shardwise-bench-tta-'));
  const removeDir = (): void => {
    if (process.env.BENCH_KEEP === '1') process.stderr.write(`kept ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  };
  const track = stopOnInterrupt(removeDir);
  try {
    const yaml = ttaJobYaml(opts.microBatch, opts.compression);
    const job = path.join(dir, 'tta.yaml');
    writeFileSync(job, yaml);
    const holdout = path.join(dir, 'holdout.json');
    const split = await writeHoldoutFile(yaml, opts.data, holdout);
    const output = process.env.BENCH_DEBUG === '1' ? (line: string) => process.stderr.write(`${line}\n`) : undefined;
    console.log(`# bench-tta: ${split.train} training and ${split.val} held-out images of ${opts.data}; shardwise: coordinator + ` +
      `${TTA_WORKERS} workers, micro-batches of ${opts.microBatch}, compression ${opts.compression}; wall_s from every worker ready to the last epoch's ` +
      'record (evaluations included), as the peer times from the start of training');
    const loads = [load()];
    const ours = await runTtaCluster({ job, dataDir: opts.data, runsDir: path.join(dir, 'runs'), timeline: path.join(dir, 'timeline.json'),
      backend: opts.backend, output, track });
    if (ours.backendLine) console.log(`# ${ours.backendLine}`);
    console.log(epochLine('shardwise', ours.epochs));
    const b = phaseBreakdown(ours.trace, ours.unfrozenSteps);
    console.log(`# shardwise timeline: an average unfrozen step (${b.steps} steps), ms per step by process and phase:`);
    for (const line of breakdownTable(b)) console.log(`# ${line}`);
    const top1 = pct(ours.epochs[TTA_EPOCHS - 1].top1);
    const last = ours.epochs[TTA_EPOCHS - 1];
    console.log(`# shardwise after epoch ${TTA_EPOCHS}: val loss ${last.loss.toFixed(4)}, top-1 ${pct(last.top1)}%`);
    const compression = opts.compression === 'none' ? '' : ` compression=${opts.compression}`;
    const head = `bench-tta workers=${TTA_WORKERS} epochs=${TTA_EPOCHS}${compression} wall_s=${ours.wallSeconds.toFixed(1)} val_top1=${top1}`;
    if (opts.skipPeer) {
      console.log(head);
      return;
    }
    loads.push(load());
    const peer = await runPeer(holdout, track, output);
    loads.push(load());
    console.log(`# load average (1 min) at shardwise's start, the peer's start, the end: ${loads.join(', ')} on ${availableParallelism()} cores`);
    console.log(`# peer: ${peer.command}`);
    console.log(epochLine('peer', peer.epochs));
    const unfrozen = peer.epochs.filter((e) => !e.frozen);
    const peerSteps = Math.floor(split.train / TTA_WORKERS / (TTA_BATCH / TTA_WORKERS));
    console.log(`# peer: an average unfrozen epoch ${(unfrozen.reduce((s, e) => s + e.seconds, 0) / unfrozen.length).toFixed(1)} s ` +
      `(${peerSteps} steps of ${TTA_BATCH}, evaluation included)`);
    console.log(`${head} peer_wall_s=${peer.wallSeconds.toFixed(1)} peer_top1=${pct(peer.epochs[TTA_EPOCHS - 1].top1)} ` +
      `ratio=${(ours.wallSeconds / peer.wallSeconds).toFixed(2)}`);
  } finally {
    removeDir();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
