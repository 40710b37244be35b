/**
 * Early stopping, decided deterministically. A trial is judged at rung boundaries (epoch counts) against
 * the trials BEFORE it in trial order, once each of those has either reached the rung or ended; so the
 * same sweep spec stops the same trials whatever the timing, the concurrency or a resume in between.
 *
 * - ASHA (Li et al. 2020), in the stopping form Ray Tune uses: rungs at gracePeriod * reductionFactor^k
 *   epochs; a trial continues when its objective is at least the (1 - 1/reductionFactor) quantile of the
 *   earlier trials' objectives at that rung (the first trial at a rung always continues).
 * - Synchronous ASHA (successive halving): a rung is judged once every trial of the sweep has reached it or
 *   ended; the top max(1, floor(n / reductionFactor)) of the n trials there continue, ties to the lower index.
 * - Median stopping (Golovin et al. 2017, Vizier): from gracePeriod on, every epoch; a trial stops when its
 *   best objective so far is worse than the median of the earlier trials' running means to that epoch.
 */
import type { EarlyStoppingSpec, ObjectiveMetric } from './spec-schema';
import { type EpochResult, isTerminal, type RungDecision, type TrialRecord } from './sweep-state';

/** The sweep's objective. */
export interface Objective {
  metric: ObjectiveMetric;
  direction: 'maximize' | 'minimize';
}

/** The objective's value in one epoch's results. */
export function objectiveValue(result: EpochResult, metric: ObjectiveMetric): number {
  const key = metric.slice('val.'.length) as keyof EpochResult['val'];
  return result.val[key];
}

/** Higher is better: the objective, negated when it is minimised. */
export function score(result: EpochResult, objective: Objective): number {
  const v = objectiveValue(result, objective.metric);
  return objective.direction === 'maximize' ? v : -v;
}

/** The epoch counts at which a trial of `epochs` epochs is judged (never at its last epoch: it is done). */
export function rungsFor(es: EarlyStoppingSpec, epochs: number): number[] {
  const out: number[] = [];
  if (es.type === 'asha') {
    for (let r = es.gracePeriod; r < epochs; r *= es.reductionFactor) out.push(r);
  } else if (es.type === 'median') {
    for (let r = es.gracePeriod; r < epochs; r++) out.push(r);
  }
  return out;
}

/**
 * The decision for `trial` at `rung` (it has at least `rung` results), given the sweep's other trials, or
 * null while a trial it is judged against (an earlier one; every one when synchronous) has neither reached
 * the rung nor ended: the decision must wait for it to stay deterministic.
 */
export function decideAtRung(es: EarlyStoppingSpec, objective: Objective, trial: TrialRecord, trials: readonly TrialRecord[],
  rung: number): RungDecision | null {
  const synchronous = es.type === 'asha' && es.synchronous;
  const judges = trials.filter((t) => (synchronous ? t.index !== trial.index : t.index < trial.index));
  if (judges.some((t) => t.results.length < rung && !isTerminal(t))) return null;
  const peers = judges.filter((t) => t.results.length >= rung);
  const value = objectiveValue(trial.results[rung - 1], objective.metric);
  const mine = score(trial.results[rung - 1], objective);
  const fmt = (x: number): string => (objective.direction === 'maximize' ? x : -x).toFixed(4);
  const name = objective.metric;
  if (es.type === 'asha' && es.synchronous) {
    const field = [...peers, trial].map((t) => ({ index: t.index, s: score(t.results[rung - 1], objective) }))
      .sort((a, b) => b.s - a.s || a.index - b.index);
    const keep = Math.max(1, Math.floor(field.length / es.reductionFactor));
    const rank = field.findIndex((x) => x.index === trial.index);
    return {
      rung, value, action: rank < keep ? 'continue' : 'stop',
      reason: `${name} ${value.toFixed(4)} ranks ${rank + 1} of ${field.length} trials at rung ${rung}; the top ${keep} continue`,
    };
  }
  if (es.type === 'asha') {
    if (peers.length === 0) return { rung, value, action: 'continue', reason: `first trial to reach rung ${rung}` };
    const cutoff = quantile(peers.map((t) => score(t.results[rung - 1], objective)), 1 - 1 / es.reductionFactor);
    const keep = mine >= cutoff;
    return {
      rung, value, action: keep ? 'continue' : 'stop',
      reason: `${name} ${value.toFixed(4)} ${keep ? 'within' : 'outside'} the top 1/${es.reductionFactor} ` +
        `(cutoff ${fmt(cutoff)} over ${peers.length} earlier trial${peers.length > 1 ? 's' : ''} at rung ${rung})`,
    };
  }
  if (es.type === 'median') {
    if (peers.length < es.minTrials) {
      return { rung, value, action: 'continue', reason: `${peers.length} earlier trials at epoch ${rung}, fewer than minTrials ${es.minTrials}` };
    }
    const means = peers.map((t) => mean(t.results.slice(0, rung).map((r) => score(r, objective))));
    const median = quantile(means, 0.5);
    const best = Math.max(...trial.results.slice(0, rung).map((r) => score(r, objective)));
    const keep = best >= median;
    return {
      rung, value, action: keep ? 'continue' : 'stop',
      reason: `best ${name} so far ${fmt(best)} ${keep ? 'not worse than' : 'worse than'} the median ${fmt(median)} of ` +
        `${peers.length} earlier trials' running means at epoch ${rung}`,
    };
  }
  return { rung, value, action: 'continue', reason: 'no early stopping' };
}

/** Linear-interpolated quantile (numpy's default), q in [0, 1]. */
export function quantile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
