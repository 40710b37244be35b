/**
 * What a trial does in each epoch, reduced to one hash per epoch: the learning rate of every parameter
 * group at every step, the frozen flags, the data order and everything else the job spec says. Two trials
 * whose first k hashes agree train bit-identically through epoch k, so a sweep runs those epochs once.
 *
 * The rates, flags and batches are computed by the trainer's own functions (`baseLearningRate`,
 * `isBackboneFrozen`, `epochBatches`), never read off a list of "schedule fields": two cosine schedules that
 * differ only in `training.epochs` already differ at step 1 and so never share. Every field whose effect is
 * not computed here is hashed whole, so a field added to the job spec later is conservative by default.
 */
import { createHash } from 'node:crypto';
import {
  baseLearningRate, epochBatches, groupLearningRates, isBackboneFrozen, type JobSpec, PARAM_GROUPS, stepsPerEpoch,
} from '../common';

/** One hash per epoch of `spec` for a training set of `trainCount` images (after limit and split). */
export function epochSignatures(spec: JobSpec, trainCount: number): string[] {
  const steps = stepsPerEpoch(trainCount, spec.training.batchSize);
  const constant = hash(JSON.stringify(invariantPart(spec)));
  const out: string[] = [];
  for (let epoch = 0; epoch < spec.training.epochs; epoch++) {
    const frozen = isBackboneFrozen(epoch, spec.freeze);
    const h = createHash('sha256').update(constant).update(`frozen:${frozen};`);
    for (let step = 0; step < steps; step++) {
      const lr = groupLearningRates(baseLearningRate({ epoch, stepInEpoch: step, stepsPerEpoch: steps }, spec, 1), spec.paramGroups);
      // A frozen group's rate is never used: trials that differ only there train identically.
      for (const g of PARAM_GROUPS) h.update(`${g}:${frozen && g === 'backbone' ? '-' : lr[g]};`);
    }
    for (const batch of epochBatches(trainCount, spec.seed, epoch, spec.training.batchSize)) {
      h.update(new Uint8Array(batch.buffer, batch.byteOffset, batch.byteLength)).update('|');
    }
    out.push(h.digest('hex').slice(0, 16));
  }
  return out;
}

/** How many leading epochs two signature lists share. */
export function sharedEpochs(a: readonly string[], b: readonly string[]): number {
  let k = 0;
  while (k < a.length && k < b.length && a[k] === b[k]) k++;
  return k;
}

// The spec minus what the per-step computation above covers (rates, freeze, batch order) and what does
// not change the trajectory (names, output and cluster settings, the data folder). ReduceLROnPlateau
// carries state from epoch to epoch, so its settings stay in whenever it is the schedule.
function invariantPart(spec: JobSpec): unknown {
  const drop = (obj: object, keys: readonly string[]): Record<string, unknown> =>
    Object.fromEntries(Object.entries(obj).filter(([k]) => !keys.includes(k)));
  return {
    ...drop(spec, ['name', 'output', 'distributed', 'freeze', 'paramGroups', 'schedule', 'optimizer', 'training', 'data']),
    optimizer: drop(spec.optimizer, ['learningRate']),
    training: drop(spec.training, ['epochs', 'batchSize']),
    data: drop(spec.data, ['dir']),
    plateau: spec.schedule.type === 'plateau' ? spec.schedule.plateau : null,
  };
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
