/**
 * Replays a finished plain grid (no early stopping, no sharing) through early-stopping rules. Training is
 * deterministic, so a trial's per-epoch results are the same whatever stops it: the replay gives exactly the
 * decisions and trial-epochs a real sweep with that rule would have (it reproduces `make bench-sweep`'s own
 * sweep). Prints one `bench-sweep-replay` line per rule.
 *
 *   node --import tsx bench/sweep-replay.ts --grid runs/bench-sweep/STAMP/grid --sweep runs/bench-sweep/STAMP/sweep
 *
 * `--sweep` (the same grid run with sharing) supplies the trials' epoch signatures, from which the replay plans
 * which trial forks from which (its state's forks are cut short where a donor stopped before the fork point).
 */
import { Command } from 'commander';
import {
  bestTrial, decideAtRung, type EarlyStoppingSpec, forkFor, type ObjectiveMetric, readSweepState, rungsFor, runTrialEpochs, type TrialRecord,
} from '../sweep';

const RULES: EarlyStoppingSpec[] = [
  ...[1, 2, 3, 6].flatMap((gracePeriod) => [2, 3].flatMap((reductionFactor) => [false, true].map((synchronous) =>
    ({ type: 'asha' as const, gracePeriod, reductionFactor, synchronous })))),
  { type: 'median', gracePeriod: 1, minTrials: 1 },
];

function main(): void {
  const opts = new Command().requiredOption('--grid <dir>').requiredOption('--sweep <dir>')
    .option('--metric <m>', 'objective', 'val.top1').parse().opts();
  const grid = readSweepState(opts.grid);
  const shared = readSweepState(opts.sweep);
  if (!grid || !shared) throw new Error(`expected sweep states in ${opts.grid} and ${opts.sweep}`);
  const objective = { metric: opts.metric as ObjectiveMetric, direction: opts.metric === 'val.loss' ? 'minimize' : 'maximize' } as const;
  const bestOf = (ts: TrialRecord[]): string | undefined => bestTrial({ objective }, { ...grid, trials: ts.filter((t) => t.state === 'completed') })?.id;
  const naive = grid.trials.reduce((n, t) => n + t.epochs, 0);
  const planned = shared.trials.map((t, i) => forkFor(t, shared.trials.slice(0, i).map((x) => ({ ...x, state: 'pending' as const }))));
  for (const es of RULES) {
    const trials: TrialRecord[] = grid.trials.map((t) => ({ ...t, results: [], decisions: [], state: 'pending', fork: planned[t.index] }));
    for (let changed = true; changed;) {
      changed = false;
      for (const t of trials.filter((x) => x.state === 'pending')) {
        const rung = rungsFor(es, t.epochs).find((r) => r <= t.results.length && !t.decisions.some((d) => d.rung === r));
        if (rung !== undefined) {
          const d = decideAtRung(es, objective, t, trials, rung);
          if (d === null) continue;
          t.decisions.push(d);
          if (d.action === 'stop') t.state = 'stopped';
        } else if (t.results.length >= t.epochs) {
          t.state = 'completed';
        } else {
          t.results = grid.trials[t.index].results.slice(0, rungsFor(es, t.epochs).find((r) => r > t.results.length) ?? t.epochs);
        }
        changed = true;
      }
    }
    const run = runTrialEpochs(trials, trials.map((t) => t.results.length));
    const rule = Object.entries(es).map(([k, v]) => `${k}=${v}`).join(',');
    console.log(`bench-sweep-replay rule=${rule} run_trial_epochs=${run} saved_fraction=${(1 - run / naive).toFixed(3)} ` +
      `best=${bestOf(trials)} grid_best=${bestOf(grid.trials)}`);
  }
}

main();
