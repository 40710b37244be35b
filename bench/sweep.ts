/**
 * `make bench-sweep`: sweeps/seeds-freeze-lr.yaml (frozen epochs 0/2/5 x head multiplier 1/10, ImageNet
 * MobileNet at 32x32) on a small data limit, as written (ASHA + shared prefixes), then as a plain grid (no
 * early stopping, no sharing). Prints
 *
 *   bench-sweep trials=N naive_trial_epochs=A run_trial_epochs=B saved_fraction=F wall_s=W
 *   bench-sweep-grid trials=N run_trial_epochs=A wall_s=W best=T same_best=true|false
 *
 *   node --import tsx bench/sweep.ts [--data DIR] [--limit 3200] [--val-fraction 0.25] [--skip-grid]
 *
 * The data: the first 3,200 images, a quarter held out for validation (2,400 to train on, 800 to rank by).
 * With 800 images and the spec's 10% (80 validation images, one image = 1.25 points of top-1, 25 steps an
 * epoch) the six trials' curves crossed from epoch to epoch on noise, so whether early stopping "kept the
 * best" was a coin toss in the sweep and the plain grid alike.
 *
 * The plain grid runs first (its line is printed last), so an interrupted bench still leaves a grid that
 * bench/sweep-replay.ts can replay through other early-stopping rules. Both sweeps run in a fresh folder
 * under runs/bench-sweep/ (left there: reports, curves, trials).
 */
import * as path from 'node:path';
import { Command } from 'commander';
import { utcStamp } from '../common';
import { bestTrial, loadSweepSpec, runSweep, type SweepSavings, type SweepSpec, sweepSavings, writeSweepReport } from '../sweep';

const SPEC_FILE = path.resolve(__dirname, '..', 'sweeps', 'seeds-freeze-lr.yaml');

interface Measured {
  savings: SweepSavings;
  wall: number;
  best?: string;
}

async function measure(spec: SweepSpec, data: string | undefined): Promise<Measured> {
  const t0 = performance.now();
  const { state } = await runSweep(spec, { dataDir: data });
  const wall = (performance.now() - t0) / 1000;
  process.stderr.write(`# ${spec.name} report: ${await writeSweepReport(spec, state)}\n`);
  process.stderr.write(`# ${state.trials.map((t) => `${t.id}=${t.state}/${t.results.length}`).join(' ')}\n`);
  return { savings: sweepSavings(state), wall, best: bestTrial(spec, state)?.id };
}

async function main(): Promise<void> {
  const opts = new Command().option('--data <dir>').option('--limit <n>', 'images read (training + validation)', '3200')
    .option('--val-fraction <f>', 'fraction of them held out for validation', '0.25').option('--skip-grid').parse().opts();
  const base = loadSweepSpec(SPEC_FILE);
  const root = path.resolve('runs', 'bench-sweep', utcStamp(new Date()));
  const job = { ...base.baseJob, data: { ...(base.baseJob.data as object), limit: Number(opts.limit), valFraction: Number(opts.valFraction) } };
  const tuned: SweepSpec = { ...base, baseJob: job, dir: path.join(root, 'sweep'), hash: `${base.hash}-bench` };
  const grid: SweepSpec = { ...tuned, earlyStopping: { type: 'none' }, sharedPrefixes: false, dir: path.join(root, 'grid'), hash: `${base.hash}-grid` };
  const g = opts.skipGrid ? undefined : await measure(grid, opts.data);
  const r = await measure(tuned, opts.data);
  const s = r.savings;
  console.log(`bench-sweep trials=${s.trials} naive_trial_epochs=${s.naiveTrialEpochs} run_trial_epochs=${s.runTrialEpochs} ` +
    `saved_fraction=${s.savedFraction.toFixed(3)} wall_s=${r.wall.toFixed(1)}`);
  if (g === undefined) return;
  console.log(`bench-sweep-grid trials=${g.savings.trials} run_trial_epochs=${g.savings.runTrialEpochs} wall_s=${g.wall.toFixed(1)} ` +
    `best=${g.best} sweep_best=${r.best} same_best=${g.best === r.best}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
