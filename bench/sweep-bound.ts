/**
 * What any early-stopping rule that ranks trials by the metric could save on a finished plain grid while
 * keeping the grid's best trial (bench/stopping-bound.ts): one `bench-sweep-bound` line per comparison set,
 * `global` (every trial ranked against every other, as successive halving and ASHA do) and `phase` (only
 * against trials in the same freeze phase at that epoch, frozen or not, from each trial's job spec).
 *
 *   node --import tsx bench/sweep-bound.ts --grid runs/bench-sweep/STAMP/grid [--sweep runs/bench-sweep/STAMP/sweep]
 *   node --import tsx bench/sweep-bound.ts --curves curves.csv --data DIR
 *
 * The curves: the grid's sweep state (`--grid`, a sweep folder or its report folder), or a CSV with a header
 * `trial,1,2,...,E` and one row per trial in trial order (`t000,0.226,0.332,...`), the objective's values.
 * The shared prefixes: the planner's forks over the trials' epoch signatures, read from the same grid run
 * with sharing (`--sweep`, as bench/sweep-replay.ts reads them) or computed from `--spec` on `--data` with
 * the bench's split (`--limit`, `--val-fraction`). Trial parameters come from the grid's state, or from the
 * spec's search by trial index with a CSV.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { isBackboneFrozen } from '../common';
import {
  createSearch, epochSignatures, type ForkCandidate, forkFor, loadSweepSpec, objectiveValue, readSweepState, type SweepSpec, type SweepState, TrainCounts,
  trialId, trialJob, type TrialParams,
} from '../sweep';
import { type BoundTrial, COMPARISONS, stoppingBound } from './stopping-bound';

const SPEC_FILE = path.resolve(__dirname, '..', 'sweeps', 'seeds-freeze-lr.yaml');

/** A grid's trials as the bound needs them: parameters, objective per epoch, epoch signatures. */
export interface GridCurves {
  ids: string[];
  params: TrialParams[];
  values: number[][];
  signatures: string[][];
}

/** `spec` with the bench's data split: `limit` images read (0: all), `valFraction` of them held out. */
export function withDataSplit(spec: SweepSpec, limit: number, valFraction: number): SweepSpec {
  return { ...spec, baseJob: { ...spec.baseJob, data: { ...(spec.baseJob.data as object), limit, valFraction } } };
}

/** The `bench-sweep-bound` lines for a grid's curves; the grid's best is the highest final score, lowest index on a tie. */
export function boundLines(spec: SweepSpec, grid: GridCurves): string[] {
  const sign = spec.objective.direction === 'maximize' ? 1 : -1;
  const planned: ForkCandidate[] = [];
  const trials: BoundTrial[] = grid.ids.map((id, k) => {
    const job = trialJob(spec, grid.params[k], k);
    const fork = forkFor({ signatures: grid.signatures[k], epochs: grid.values[k].length }, planned);
    planned.push({ id, signatures: grid.signatures[k], state: 'pending' });
    const phases = grid.values[k].map((_, e) => (isBackboneFrozen(e, job.freeze) ? 'frozen' : 'unfrozen'));
    return { id, scores: grid.values[k].map((v) => sign * v), phases, fork };
  });
  const finals = trials.map((t) => t.scores.at(-1)!);
  const best = finals.indexOf(Math.max(...finals));
  return COMPARISONS.map((comparison) => {
    const b = stoppingBound(trials, best, comparison);
    return `bench-sweep-bound comparison=${comparison} best=${trials[best].id} naive_trial_epochs=${b.naiveTrialEpochs} ` +
      `min_run_trial_epochs=${b.minRunTrialEpochs} max_saved_fraction=${b.maxSavedFraction.toFixed(3)} ` +
      `schedule=${b.stops.map((s, k) => `${trials[k].id}:${s}`).join(',')} optimal_schedules=${b.optimalSchedules}`;
  });
}

/**
 * A plain grid's state as curves, with the signatures of the same grid run with sharing (`shared`; none
 * without it, for the caller to compute).
 */
export function gridCurves(spec: Pick<SweepSpec, 'objective'>, grid: SweepState, shared: SweepState | undefined): GridCurves {
  const unfinished = grid.trials.filter((t) => t.results.length !== t.epochs);
  if (unfinished.length > 0 || grid.trials.length === 0) {
    throw new Error(`expected a finished plain grid, got ${unfinished.map((t) => `${t.id} at ${t.results.length}/${t.epochs}`).join(', ') || 'no trials'}`);
  }
  return {
    ids: grid.trials.map((t) => t.id),
    params: grid.trials.map((t) => t.params),
    values: grid.trials.map((t) => t.results.map((r) => objectiveValue(r, spec.objective.metric))),
    signatures: shared ? grid.trials.map((t) => signaturesOf(shared, t.id)) : [],
  };
}

function signaturesOf(shared: SweepState, id: string): string[] {
  const t = shared.trials.find((x) => x.id === id);
  if (t === undefined || t.signatures.length === 0) throw new Error(`expected trial ${id} with epoch signatures in the shared sweep, found none`);
  return t.signatures;
}

/**
 * A curves CSV: header `trial,1,2,...,E`, then one row per trial in trial order. It holds trial ids and
 * numbers only, and no CSV library is among the dependencies: cells are split on commas, and anything that
 * is not the expected id or a finite number (a quoted cell, an empty one) is refused.
 */
export function readCurvesCsv(file: string): { ids: string[]; values: number[][] } {
  const rows = fs.readFileSync(file, 'utf8').split(/\r?\n/).filter((l) => l.trim() !== '').map((l) => l.split(',').map((c) => c.trim()));
  const [header, ...body] = rows;
  const epochs = header.length - 1;
  if (header[0] !== 'trial' || header.slice(1).some((c, e) => c !== String(e + 1))) {
    throw new Error(`${file}: expected a header trial,1,2,...,E, got ${header.join(',')}`);
  }
  body.forEach((row, k) => {
    if (row[0] !== trialId(k) || row.length !== epochs + 1 || row.slice(1).some((c) => c === '' || !Number.isFinite(Number(c)))) {
      throw new Error(`${file}: expected row ${k + 1} to be ${trialId(k)} and ${epochs} numbers, got ${row.join(',')}`);
    }
  });
  return { ids: body.map((r) => r[0]), values: body.map((r) => r.slice(1).map(Number)) };
}

async function main(): Promise<void> {
  const opts = new Command().option('--grid <dir>').option('--curves <csv>').option('--sweep <dir>').option('--spec <file>', 'sweep spec', SPEC_FILE)
    .option('--data <dir>').option('--limit <n>', 'as bench/sweep.ts', '0').option('--val-fraction <f>', 'as bench/sweep.ts', '0.5').parse().opts();
  if ((opts.grid === undefined) === (opts.curves === undefined)) throw new Error('expected exactly one of --grid DIR and --curves FILE');
  const spec = withDataSplit(loadSweepSpec(opts.spec), Number(opts.limit), Number(opts.valFraction));
  const shared = opts.sweep === undefined ? undefined : readSweepState(opts.sweep);
  if (opts.sweep !== undefined && shared === undefined) throw new Error(`expected a sweep state in ${opts.sweep}, found none`);
  let curves: GridCurves;
  if (opts.grid !== undefined) {
    const grid = readSweepState(opts.grid);
    if (grid === undefined) throw new Error(`expected a sweep state in ${opts.grid}, found none`);
    curves = gridCurves(spec, grid, shared);
  } else {
    if (spec.algorithm.type === 'tpe') throw new Error(`expected a grid or random search to recover trial parameters by index, got tpe`);
    const { ids, values } = readCurvesCsv(opts.curves);
    const search = createSearch(spec.algorithm, spec.parameters);
    const params = ids.map((id, k) => {
      const p = search.suggest(k, []);
      if (p === null) throw new Error(`${opts.curves}: expected at most ${k} trials, as ${opts.spec} makes, got ${id} and more`);
      return p;
    });
    curves = { ids, params, values, signatures: shared ? ids.map((id) => signaturesOf(shared, id)) : [] };
  }
  if (shared === undefined && spec.sharedPrefixes) {
    // No run with sharing: the planner's signatures, computed from the spec on the data as a sweep would.
    const counts = new TrainCounts(opts.data);
    curves.signatures = await Promise.all(curves.params.map(async (p, k) => {
      const job = trialJob(spec, p, k);
      return epochSignatures(job, await counts.of(job));
    }));
  }
  for (const line of boundLines(spec, curves)) console.log(line);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
