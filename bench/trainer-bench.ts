// The setup the compute benches and profiles share: the demo's recipe with the backbone training from the
// first step (the slow, unfrozen phase), the MobileNet at SIZE upsampled from CIFAR-sized images, one
// step's batch of random images, and what the trainers' step takes besides.
import {
  Augmenter, beginEpoch, buildModel, ClassificationMetrics, createTrainerState, disposeModelParts, disposeTrainerState,
  type JobSpec, type ModelParts, parseJobSpec, Rng, type TrainerState,
} from '../common';

/** Images per step. */
export const TRAINER_BATCH = 32;
/** Images per micro-batch: two per step. */
export const TRAINER_MICRO_BATCH = 16;

/** A trainer ready to step on one fixed random batch. */
export interface TrainerBench {
  spec: JobSpec;
  parts: ModelParts;
  state: TrainerState;
  train: { images: Uint8Array; labels: Uint8Array; count: number };
  /** Every image of `train`, in order: one step's batch. */
  indices: Uint32Array;
  augmenter: Augmenter;
  metrics: ClassificationMetrics;
  dispose(): void;
}

/** Builds the pretrained MobileNet at `size` and a trainer state at epoch 0; images seeded by `size`. */
export async function trainerBench(name: string, size: number): Promise<TrainerBench> {
  const spec = parseJobSpec([
    `name: ${name}`,
    `model: { architecture: mobilenet_v1, pretrained: true, inputSize: ${size}, head: linear }`,
    `training: { epochs: 1, batchSize: ${TRAINER_BATCH}, microBatchSize: ${TRAINER_MICRO_BATCH} }`,
    'optimizer: { type: adam, learningRate: 0.0001 }',
    'freeze: { backboneEpochs: 0 }',
  ].join('\n'));
  const parts = await buildModel(spec.model, spec.seed);
  const state = createTrainerState(spec, parts, 1_000_000);
  beginEpoch(state, 0);
  const rng = new Rng(size);
  const train = {
    images: Uint8Array.from({ length: TRAINER_BATCH * 32 * 32 * 3 }, () => rng.int(256)),
    labels: Uint8Array.from({ length: TRAINER_BATCH }, () => rng.int(10)),
    count: TRAINER_BATCH,
  };
  return {
    spec, parts, state, train,
    indices: Uint32Array.from({ length: TRAINER_BATCH }, (_, i) => i),
    augmenter: new Augmenter(spec.data.augment),
    metrics: new ClassificationMetrics(spec.model.numClasses),
    dispose: () => {
      disposeTrainerState(state);
      disposeModelParts(parts);
    },
  };
}
