import * as tf from '@tensorflow/tfjs';
import {
  applyGradientMeans,
  applyMovingStatDeltas,
  beginGradientStep,
  type ClassificationMetrics,
  type GroupLearningRates,
  type ModelParts,
  movingStatistics,
  processTimeline,
  type RunDirectory,
  type RunRecorder,
  type StepEvent,
  trainableVariables,
  type WireTensor,
  type WireTensorSpec,
} from '../../common';
import { PlanningError, StaleResultError } from '../errors';
import type { Reduction } from './reduction';
import type { StepHost } from './step-host';
import type { StepRound, StepSums } from './step-round';
import { modelTensors } from './update-log';

/** What a share carries: its gradient sums' and its statistic deltas' names and shapes. */
export interface ShareManifests {
  readonly gradients: readonly WireTensorSpec[];
  readonly stats: readonly WireTensorSpec[];
}

/** Each model's manifests, by freeze state: its variables and their shapes are fixed once it is built. */
const manifestsByModel = new WeakMap<ModelParts, Map<boolean, ShareManifests>>();

/**
 * What a push must carry in the freeze state in force: the gradient sums of the unfrozen trainable
 * variables and the deltas of the moving statistics that train (`computeShare` returns exactly these).
 * Worked out once per model and freeze state: every step's plan asks.
 */
export function shareManifests(job: StepHost): ShareManifests {
  const { parts, trainer } = job;
  let byFreeze = manifestsByModel.get(parts);
  if (!byFreeze) manifestsByModel.set(parts, (byFreeze = new Map()));
  let manifests = byFreeze.get(trainer.frozen);
  if (!manifests) byFreeze.set(trainer.frozen, (manifests = buildManifests(parts, trainer.frozen)));
  return manifests;
}

function buildManifests(parts: ModelParts, frozen: boolean): ShareManifests {
  const gradients = trainableVariables(parts)
    .filter((v) => !(frozen && v.group === 'backbone'))
    .map((v) => Object.freeze({ name: v.key, dtype: 'float32' as const, shape: [...v.variable.shape] }));
  const stats = [...movingStatistics(parts, { backboneFrozen: frozen })].map(([name, v]) => Object.freeze({
    name,
    dtype: 'float32' as const,
    shape: [...v.shape] as number[],
  }));
  return Object.freeze({ gradients: Object.freeze(gradients), stats: Object.freeze(stats) });
}

/**
 * Commits a complete step: the update is exactly the local trainer's (`applyGradientSums` over the step's
 * samples, `applyMovingStatDeltas` over its micro-batches, on `sums`: the shares added in micro-batch order
 * on the coordinator, or the allreduce's vector), but the coordinator's replica gets it through
 * `job.replicaUpdate`, after the next step's assignments went out. Everything else happens now: weights
 * version, the update workers copy (or, for the members of `reduction`, replay), the ledger, then
 * `committed` (the job may open the next step there, before the rest), the step record, the metrics and
 * the replica hashes. Returns the learning rates used.
 */
export function applyStep(
  job: StepHost,
  round: StepRound,
  sums: StepSums,
  epochTrain: ClassificationMetrics,
  out: { recorder: RunRecorder; run: RunDirectory },
  reduction?: Reduction,
  committed?: (lr: GroupLearningRates) => void,
): GroupLearningRates {
  const reduceStart = job.now();
  // The replica's hash at the step's weights, if not taken yet: before this step's update is deferred.
  round.hashReplicaNow();
  const lr = beginGradientStep(job.trainer, sums.grads.keys(), sums.count);
  const microBatches = round.plan.microBatches.length;
  job.replicaUpdate.defer(() => {
    const startUs = processTimeline().now();
    applySums(job, round, sums, lr, microBatches);
    processTimeline().background('apply update (coordinator replica)', round.globalStep, startUs);
  });
  round.commit();
  job.commitWeights(job.trainer.globalStep);
  const reduced = reduction && {
    order: { key: reduction.key, learningRates: lr, sampleCount: sums.count, microBatchCount: microBatches },
    members: new Set(reduction.workers),
    sums: reducedTensors(round, sums),
  };
  const changed = new Set([...sums.grads.keys(), ...sums.deltas.keys()]);
  job.updates.record(job.weightsVersion, () => {
    job.settleReplica();
    return modelTensors(job.parts).filter((t) => changed.has(t.name));
  }, reduced);
  job.ledger.closeStep({ epoch: round.plan.epoch, step: round.plan.step }, round.plan.microBatches.length);
  committed?.(lr);
  epochTrain.add(sums);
  const doneMs = job.now();
  const seconds = (doneMs - round.openedAtMs) / 1000;
  const event: StepEvent = {
    type: 'step',
    epoch: round.plan.epoch,
    step: round.plan.step,
    stepsPerEpoch: job.planner.stepsPerEpoch,
    globalStep: round.globalStep,
    count: sums.count,
    loss: sums.lossSum / sums.count,
    top1: sums.correctTop1 / sums.count,
    lr,
    samplesPerSec: sums.count / Math.max(seconds, 1e-9),
  };
  out.recorder.onEvent(event);
  const totalSteps = job.spec.training.epochs * job.planner.stepsPerEpoch;
  job.telemetry.onStep({
    epoch: round.plan.epoch,
    stepInEpoch: round.plan.step,
    stepsPerEpoch: job.planner.stepsPerEpoch,
    stepsLeft: Math.max(0, totalSteps - job.weightsVersion),
    samples: sums.count,
    seconds,
    reduceSeconds: (doneMs - reduceStart) / 1000,
    timings: round.timings,
    workerSeconds: round.workerSeconds,
    train: epochTrain.summary(),
    lr,
    frozen: job.trainer.frozen,
  });
  if (round.reportsHash) recordReplicaHashes(out.run, round);
  return lr;
}

/**
 * The step's sums as the tensors an APPLY sends a worker that was no member of the allreduce: the
 * gradient sums, then the statistic deltas, as the round's specs list them (views, not copies: the
 * sums are not written after the commit).
 */
function reducedTensors(round: StepRound, sums: StepSums): WireTensor[] {
  const of = (specs: readonly WireTensorSpec[], values: ReadonlyMap<string, Float32Array>) => specs.map((spec) => {
    const data = values.get(spec.name);
    if (!data) throw new PlanningError(`step ${round.globalStep}: the reduced sums lack '${spec.name}'`);
    return { name: spec.name, dtype: 'float32' as const, shape: [...spec.shape], data };
  });
  return [...of(round.gradientSpecs, sums.grads), ...of(round.statSpecs, sums.deltas)];
}

/** The update itself on the coordinator's replica: the optimizer step and the moving statistics. */
function applySums(job: StepHost, round: StepRound, sums: StepSums, lr: GroupLearningRates, microBatches: number): void {
  const shapes = new Map([...round.gradientSpecs, ...round.statSpecs].map((s) => [s.name, [...s.shape]]));
  const toTensors = (m: Map<string, Float32Array>) =>
    new Map([...m].map(([name, values]) => [name, tf.tensor(values, shapes.get(name), 'float32')]));
  const grads = toTensors(sums.grads);
  const deltas = toTensors(sums.deltas);
  try {
    applyGradientMeans(job.trainer, grads, sums.count, lr);
    applyMovingStatDeltas(job.parts, deltas, microBatches);
  } finally {
    tf.dispose([...grads.values(), ...deltas.values()]);
  }
}

/** Appends the step's `replica-hash` record: every reporting worker's hash beside the coordinator's. */
function recordReplicaHashes(run: RunDirectory, round: StepRound): void {
  const workers = Object.fromEntries([...round.workerHashes].sort(([a], [b]) => (a < b ? -1 : 1)));
  run.appendMetrics({
    type: 'replica-hash',
    globalStep: round.globalStep,
    weightsVersion: round.weightsVersion,
    coordinator: round.coordinatorHash ?? '',
    workers,
    agree: Object.values(workers).every((h) => h === round.coordinatorHash),
  });
}

/**
 * Counts micro-batches in the epoch ledger (exactly once): a pushed share when it is accepted, held ones
 * when the allreduce that carries them commits. A repeat is StaleResultError.
 */
export function countInLedger(job: StepHost, round: StepRound, workerId: string, ids: readonly number[]): void {
  const at = { epoch: round.plan.epoch, step: round.plan.step };
  for (const id of ids) {
    const counted = job.ledger.accept(at, id, workerId, round.plan.microBatches[id].sampleIndices);
    if (!counted.accepted) throw new StaleResultError(workerId, 'microBatchIds', id, id, counted.message);
  }
}
