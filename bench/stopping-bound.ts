/**
 * The cheapest early stopping any rule that ranks trials by the metric could reach on a finished grid, found
 * by trying every stopping schedule (each trial's stop epoch in 1..its epochs). A schedule counts when
 *
 * - the grid's best trial runs to its last epoch, and
 * - it is consistent with ranking: no trial stops at an epoch e while a trial it is compared with there
 *   continues past e with a strictly lower score at e. Equal scores are a tie, and either side of a tie may
 *   stop: twins inside a shared prefix are bit-identical there, so no rule can tell them apart.
 *
 * Every rung rule that keeps the top of a ranking at its rungs (successive halving, synchronous ASHA, any
 * grace period or reduction factor) gives such a schedule, so no such rule saves more than the cheapest one.
 * Rules that do not rank (asynchronous ASHA lets the first trials through a rung before anyone is there to
 * compare them with) are not bound by it. Its cost is counted as `make bench-sweep` counts `run_trial_epochs`:
 * a shared prefix once (`runTrialEpochs`, the planner's forks).
 */
import { runTrialEpochs, type TrialRecord } from '../sweep';

/** Whom a trial is ranked against at an epoch: every trial, or only those in the same phase there. */
export type Comparison = 'global' | 'phase';

/** The comparison sets, in the order the bench prints them. */
export const COMPARISONS: readonly Comparison[] = ['global', 'phase'];

/** Schedules tried at most (the product of the non-best trials' epoch counts); beyond it the search refuses. */
export const MAX_SCHEDULES = 5_000_000;

/** One trial of the finished grid, as the bound sees it. */
export interface BoundTrial {
  id: string;
  /** Score after each epoch (index 0: after epoch 1), higher is better: the objective, negated when minimised. */
  scores: readonly number[];
  /** What the trial does in each epoch (index 0: epoch 1); `phase` comparison ranks only equal phases. */
  phases: readonly string[];
  /** The planner's fork: the earlier trial it shares its first epochs with. */
  fork: TrialRecord['fork'];
}

/** The cheapest consistent schedule. */
export interface StoppingBound {
  comparison: Comparison;
  /** Every trial's epochs, summed: the plain grid. */
  naiveTrialEpochs: number;
  minRunTrialEpochs: number;
  maxSavedFraction: number;
  /** Stop epoch per trial (its epoch count: ran to the end); of the cheapest, the earliest stops in trial order. */
  stops: number[];
  /** How many schedules reach the minimum. */
  optimalSchedules: number;
}

/** The cheapest schedule that runs trial `best` to the end and ranks by score under `comparison`. */
export function stoppingBound(trials: readonly BoundTrial[], best: number, comparison: Comparison, maxSchedules = MAX_SCHEDULES): StoppingBound {
  if (!(best >= 0 && best < trials.length)) throw new Error(`expected the best trial's index in 0..${trials.length - 1}, got ${best}`);
  for (const t of trials) {
    if (t.scores.length === 0 || t.phases.length !== t.scores.length) {
      throw new Error(`trial ${t.id}: expected one phase per scored epoch and at least one epoch, got ${t.scores.length} scores and ${t.phases.length} phases`);
    }
  }
  const epochs = trials.map((t) => t.scores.length);
  const schedules = epochs.reduce((n, e, k) => (k === best ? n : n * e), 1);
  if (schedules > maxSchedules) {
    throw new Error(`expected at most ${maxSchedules} stopping schedules to try, got ${schedules} (${trials.length} trials of up to ` +
      `${Math.max(...epochs)} epochs): the bound is a brute-force search`);
  }
  const naive = epochs.reduce((a, b) => a + b, 0);
  const stops = epochs.map((e, k) => (k === best ? e : 1));
  let min = Infinity;
  let argmin: number[] = [];
  let count = 0;
  for (let left = schedules; left > 0; left--) {
    if (consistent(trials, stops, comparison)) {
      const run = runTrialEpochs(trials, stops);
      if (run < min) [min, argmin, count] = [run, [...stops], 0];
      if (run === min) count++;
    }
    advance(stops, epochs, best);
  }
  // The best trial running alone to its end is always consistent: nothing continues past a stopped trial.
  return { comparison, naiveTrialEpochs: naive, minRunTrialEpochs: min, maxSavedFraction: 1 - min / naive, stops: argmin, optimalSchedules: count };
}

// Whether no trial stops at e below a compared trial that continues past e.
function consistent(trials: readonly BoundTrial[], stops: readonly number[], comparison: Comparison): boolean {
  for (let i = 0; i < trials.length; i++) {
    const e = stops[i];
    if (e === trials[i].scores.length) continue;
    for (let j = 0; j < trials.length; j++) {
      if (stops[j] <= e || (comparison === 'phase' && trials[j].phases[e - 1] !== trials[i].phases[e - 1])) continue;
      if (trials[j].scores[e - 1] < trials[i].scores[e - 1]) return false;
    }
  }
  return true;
}

// The next schedule, the last trial's stop epoch moving fastest (the best trial's stays at its end).
function advance(stops: number[], epochs: readonly number[], best: number): void {
  for (let k = stops.length - 1; k >= 0; k--) {
    if (k === best) continue;
    if (stops[k] < epochs[k]) {
      stops[k]++;
      return;
    }
    stops[k] = 1;
  }
}
