/**
 * `make bench-sweep`: sweeps/seeds-freeze-lr.yaml (frozen epochs 0/2/5 x head multiplier 1/10, ImageNet
 * MobileNet at 32x32) on a small data limit, as written (ASHA + shared prefixes), then as a plain grid (no
 * early stopping, no sharing). Prints
 *
 *   bench-sweep trials=N naive_trial_epochs=A run_trial_epochs=B saved_fraction=F wall_s=W
 *   bench-sweep-grid trials=N run_trial_epochs=A wall_s=W best=T same_best=true|false
 *   bench-sweep-bound comparison=global|phase ... max_saved_fraction=F schedule=...   (bench/sweep-bound.ts)
 *
 *   node --import tsx bench/sweep.ts [--data DIR] [--limit 0] [--val-fraction 0.5] [--skip-grid]
 *
 * The data: every image of the folder (0 = no limit; the shared subset has 5,085), half held out for
 * validation (2,546 to rank by). The grid's best is what early stopping is judged against, so the validation
 * split must be able to rank trials: with 80 images (800 at the spec's 10%) one image was 1.25 points, and
 * with 800 (3,200 at a quarter) the grid's top two still ended 6 images apart. `best_gap` says how far the
 * sweep's pick is behind the grid's best in the grid's own results, and in validation images.
 *
 * The plain grid runs first (its line is printed last), so an interrupted bench still leaves a grid that
 * bench/sweep-replay.ts can replay through other early-stopping rules. Both sweeps run in a fresh folder
 * under runs/bench-sweep/ (left there: reports, curves, trials).
 */
import * as path from 'node:path';
import { Command } from 'commander';
import { loadTrainVal, utcStamp } from '../common';
import { bestTrial, loadSweepSpec, objectiveValue, runSweep, type SweepSavings, type SweepSpec, type SweepState, sweepSavings,
  trialJob, type TrialRecord, writeSweepReport } from '../sweep';
import { boundLines, gridCurves, withDataSplit } from './sweep-bound';

const SPEC_FILE = path.resolve(__dirname, '..', 'sweeps', 'seeds-freeze-lr.yaml');

interface Measured {
  savings: SweepSavings;
  wall: number;
  best?: TrialRecord;
  state: SweepState;
}

async function measure(spec: SweepSpec, data: string | undefined): Promise<Measured> {
  const t0 = performance.now();
  const { state } = await runSweep(spec, { dataDir: data });
  const wall = (performance.now() - t0) / 1000;
  process.stderr.write(`# ${spec.name} report: ${await writeSweepReport(spec, state)}\n`);
  process.stderr.write(`# ${state.trials.map((t) => `${t.id}=${t.state}/${t.results.length}`).join(' ')}\n`);
  return { savings: sweepSavings(state), wall, best: bestTrial(spec, state), state };
}

async function main(): Promise<void> {
  const opts = new Command().option('--data <dir>').option('--limit <n>', 'images read (training + validation; 0: all)', '0')
    .option('--val-fraction <f>', 'fraction of them held out for validation', '0.5').option('--skip-grid').parse().opts();
  const base = loadSweepSpec(SPEC_FILE);
  const root = path.resolve('runs', 'bench-sweep', utcStamp(new Date()));
  const tuned: SweepSpec = { ...withDataSplit(base, Number(opts.limit), Number(opts.valFraction)), dir: path.join(root, 'sweep'), hash: `${base.hash}-bench` };
  const grid: SweepSpec = { ...tuned, earlyStopping: { type: 'none' }, sharedPrefixes: false, dir: path.join(root, 'grid'), hash: `${base.hash}-grid` };
  const g = opts.skipGrid ? undefined : await measure(grid, opts.data);
  const r = await measure(tuned, opts.data);
  const s = r.savings;
  console.log(`bench-sweep trials=${s.trials} naive_trial_epochs=${s.naiveTrialEpochs} run_trial_epochs=${s.runTrialEpochs} ` +
    `saved_fraction=${s.savedFraction.toFixed(3)} wall_s=${r.wall.toFixed(1)}`);
  if (g === undefined) return;
  // The sweep's pick as the grid saw it at the end (the grid ran every trial to its last epoch).
  const metric = (t: TrialRecord | undefined): number => objectiveValue(t!.results.at(-1)!, base.objective.metric);
  const gap = Math.abs(metric(g.best) - metric(g.state.trials.find((t) => t.id === r.best?.id)));
  const job0 = trialJob(tuned, {}, 0);
  const valImages = (await loadTrainVal({ ...job0.data, dir: opts.data ?? job0.data.dir }, job0.seed)).val.count;
  console.log(`bench-sweep-grid trials=${g.savings.trials} run_trial_epochs=${g.savings.runTrialEpochs} wall_s=${g.wall.toFixed(1)} ` +
    `best=${g.best?.id} sweep_best=${r.best?.id} same_best=${g.best?.id === r.best?.id} best_gap=${gap.toFixed(4)}` +
    ` best_gap_images=${Math.round(gap * valImages)} val_images=${valImages}`);
  // What any rule that ranks by the metric could have saved on this grid, beside what this one did.
  for (const line of boundLines(tuned, gridCurves(tuned, g.state, r.state))) console.log(line);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
