/**
 * Creates trials: their parameters from the search, their job file, their per-epoch signatures and the
 * trial they fork from. A trial forks from the earlier trial (lowest index on a tie) with which it shares
 * the most leading epochs, so the plan depends only on the trials before it and survives a resume.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { type JobSpec, loadTrainVal } from '../common';
import { epochSignatures, sharedEpochs } from './effective-config';
import { score, type Objective } from './early-stopping';
import type { SearchAlgorithm } from './search';
import { type SweepSpec, trialJob, type Observation } from './sweep-spec';
import type { TrialRecord } from './sweep-state';

/** Sizes of training sets by data selection, loaded once each. */
export class TrainCounts {
  private readonly counts = new Map<string, number>();
  constructor(private readonly dataDir: string | undefined) {}

  /** Training images of `spec` after its limit and validation split. */
  async of(spec: JobSpec): Promise<number> {
    const data = { ...spec.data, dir: this.dataDir ?? spec.data.dir };
    const key = JSON.stringify([data.dir, data.limit, data.valFraction, spec.seed]);
    let count = this.counts.get(key);
    if (count === undefined) {
      count = (await loadTrainVal(data, spec.seed)).train.count;
      this.counts.set(key, count);
    }
    return count;
  }
}

/** The trial id of trial `index`. */
export function trialId(index: number): string {
  return `t${String(index).padStart(3, '0')}`;
}

/** What the search learns from: completed trials and their final objective, as a loss to minimise. */
export function observations(trials: readonly TrialRecord[], objective: Objective): Observation[] {
  return trials
    .filter((t) => t.state === 'completed' && t.results.length > 0)
    .map((t) => ({ params: t.params, loss: -score(t.results[t.results.length - 1], objective) }));
}

/**
 * Creates trial `index` (or returns null when the search has no more), writing its job spec into
 * `<sweep>/trials/<id>/job.yaml`.
 */
export async function createTrial(spec: SweepSpec, search: SearchAlgorithm, trials: readonly TrialRecord[], counts: TrainCounts,
  objective: Objective): Promise<TrialRecord | null> {
  const index = trials.length;
  const params = search.suggest(index, observations(trials, objective));
  if (params === null) return null;
  const job = trialJob(spec, params, index);
  const id = trialId(index);
  const dir = path.join(spec.dir, 'trials', id);
  fs.mkdirSync(dir, { recursive: true });
  const jobFile = path.join(dir, 'job.yaml');
  fs.writeFileSync(jobFile, YAML.stringify(job));
  const workers = job.distributed.desiredWorkers > 1 && isDistributed(spec) ? job.distributed.desiredWorkers : 1;
  // Multi-worker trials run as one cluster from start to end, so they neither share nor fork.
  const signatures = spec.sharedPrefixes && workers === 1 ? epochSignatures(job, await counts.of(job)) : [];
  const trial: TrialRecord = {
    id, index, params, epochs: job.training.epochs, workers, jobFile, state: 'pending', fork: null,
    results: [], checkpoints: {}, decisions: [], runDirs: [], signatures,
  };
  trial.fork = forkFor(trial, trials);
  return trial;
}

/** What the planner needs of an earlier trial to fork from it. */
export type ForkCandidate = Pick<TrialRecord, 'id' | 'state' | 'signatures'>;

/** The earlier trial this one shares the most leading epochs with, if any. */
export function forkFor(trial: Pick<TrialRecord, 'signatures' | 'epochs'>, earlier: readonly ForkCandidate[]): TrialRecord['fork'] {
  let best: TrialRecord['fork'] = null;
  for (const other of earlier) {
    if (other.state === 'failed' || other.signatures.length === 0) continue;
    const k = Math.min(sharedEpochs(trial.signatures, other.signatures), trial.epochs);
    if (k > 0 && k > (best?.epochs ?? 0)) best = { from: other.id, epochs: k };
  }
  return best;
}

/**
 * Trial-epochs the trials train themselves when trial k has run `ran[k]` epochs: a forked trial takes its
 * first epochs from its donor's checkpoints, as far as the donor got (a donor stopped before the fork point
 * leaves the rest to the trial), so an epoch two trials share is counted once, as `make bench-sweep`'s
 * `run_trial_epochs` counts the epochs each trial's own process trained.
 */
export function runTrialEpochs(trials: readonly Pick<TrialRecord, 'id' | 'fork'>[], ran: readonly number[]): number {
  const index = new Map(trials.map((t, k) => [t.id, k]));
  return trials.reduce((n, t, k) => {
    const donor = t.fork ? index.get(t.fork.from) : undefined;
    if (t.fork && donor === undefined) throw new Error(`trial ${t.id}: expected its donor ${t.fork.from} among the trials, found none`);
    return n + ran[k] - (donor === undefined ? 0 : Math.min(t.fork!.epochs, ran[donor], ran[k]));
  }, 0);
}

// Trials are one process unless the base job sets distributed.desiredWorkers above 1 explicitly.
function isDistributed(spec: SweepSpec): boolean {
  const distributed = spec.baseJob.distributed as Record<string, unknown> | undefined;
  return typeof distributed?.desiredWorkers === 'number' || spec.parameters.some((p) => p.path === 'distributed.desiredWorkers');
}
