import * as tf from '@tensorflow/tfjs';
import { ClassificationMetrics, type ModelParts, evaluateBatch, makeBatch, toTensorBatch } from '../common';
import type { LocalSamples } from './samples';
import { type Yield, yieldToEventLoop } from './share-runner';

/** Sums of an evaluation share, what SubmitEval carries. */
export interface EvalShare {
  microBatchIds: number[];
  metrics: ClassificationMetrics;
  computeSeconds: number;
}

/**
 * Evaluates the share's validation micro-batches in inference mode without augmentation (evaluateBatch
 * on each, as the local trainer's evaluateDataset does), yielding between micro-batches.
 */
export async function runEvalShare(
  parts: ModelParts,
  samples: LocalSamples,
  numClasses: number,
  yieldFn: Yield = yieldToEventLoop,
): Promise<EvalShare> {
  const t0 = performance.now();
  const metrics = new ClassificationMetrics(numClasses);
  for (const mb of samples.microBatches) {
    const batch = toTensorBatch(makeBatch(samples.data, mb.sampleIndices));
    try {
      metrics.add(evaluateBatch(parts, batch));
    } finally {
      tf.dispose([batch.x, batch.y]);
    }
    await yieldFn();
  }
  return { microBatchIds: samples.microBatches.map((mb) => mb.id), metrics, computeSeconds: (performance.now() - t0) / 1000 };
}
