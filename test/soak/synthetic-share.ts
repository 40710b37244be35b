/**
 * The soak's fake compute: a training share whose gradient is a deterministic function of the share's
 * sample ids and the step, with the shapes of the model's unfrozen trainable variables, computed without
 * tfjs. Plugged into the real Worker through `WorkerOptions.computeShare`, so the session, the data plane,
 * the allreduce, the replica updates and the ledger are the real ones and only the model's forward and
 * backward passes are skipped.
 */
import { type ModelParts, movingStatistics, trainableVariables } from '../../common';
import type { ComputedShare, ShareComputer, TrainShareInput } from '../../worker';

/**
 * One gradient value: a small multiple of 2^-12 (|v| <= 8 * 2^-12), so that float32 sums of a step's
 * values are exact in any order and every split of the step sums to the same bytes.
 */
export function syntheticValue(sampleId: number, globalStep: number, index: number): number {
  return ((sampleId * 31 + globalStep * 7 + index * 13) % 17 - 8) / 4096;
}

function sumOver(sampleIds: readonly number[], globalStep: number, size: number): Float32Array {
  const out = new Float32Array(size);
  for (const id of sampleIds) {
    for (let i = 0; i < size; i++) out[i] += syntheticValue(id, globalStep, i);
  }
  return out;
}

/**
 * The share's sums as `runTrainShare` would shape them: gradients of the unfrozen trainable variables in
 * model order, zero changes of the BatchNorm statistics that train, a loss and hit counts derived from the
 * sample ids (so the validation and ledger code sees plausible numbers).
 */
export const syntheticShare: ShareComputer = (parts: ModelParts, input: TrainShareInput): Promise<ComputedShare> => {
  const t0 = performance.now();
  const { samples } = input;
  const ids = samples.microBatches.flatMap((mb) => Array.from(mb.sampleIndices, (i) => samples.sampleIds[i]));
  const vars = trainableVariables(parts).filter((v) => !(input.backboneFrozen && v.group === 'backbone'));
  const grads = vars.map((v) => ({
    name: v.key, dtype: 'float32' as const, shape: [...v.variable.shape], data: sumOver(ids, input.globalStep, v.variable.size),
  }));
  const statDeltas = [...movingStatistics(parts, input)].map(([name, v]) => {
    const value = v.read();
    return { name, dtype: 'float32' as const, shape: [...value.shape], data: new Float32Array(value.size) };
  });
  // Top-1 hits are a subset of the top-5 hits (multiples of 10 are even).
  const top1 = ids.filter((id) => (id + input.globalStep) % 10 === 0).length;
  const top5 = ids.filter((id) => (id + input.globalStep) % 2 === 0).length;
  return Promise.resolve({
    globalStep: input.globalStep,
    epoch: input.epoch,
    configVersion: input.configVersion,
    microBatchIds: samples.microBatches.map((mb) => mb.id),
    grads,
    statDeltas,
    sampleCount: ids.length,
    lossSum: ids.length * Math.LN10,
    correctTop1: top1,
    correctTop5: top5,
    weightsHash: input.weightsHash ?? '',
    weightsVersion: input.weightsVersion,
    computeSeconds: (performance.now() - t0) / 1000,
  });
};
