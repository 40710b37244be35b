import type { ParsedJobSpec } from './schema';
import type { AutoscaleSpec } from './spec';

type ParsedAutoscale = NonNullable<ParsedJobSpec['distributed']['autoscale']>;

/** Micro-batches in a full step: the most workers a step can keep busy. */
export function microBatchesPerStep(batchSize: number, microBatchSize: number): number {
  return Math.ceil(batchSize / microBatchSize);
}

/** Cross-field problems of `distributed.autoscale`, each naming its field (empty when absent or fine). */
export function autoscaleProblems(spec: ParsedJobSpec): string[] {
  const d = spec.distributed;
  const a = d.autoscale;
  if (!a) return [];
  const problems: string[] = [];
  if (a.minWorkers !== undefined && (a.minWorkers < d.minWorkers || a.minWorkers > d.maxWorkers)) {
    problems.push(`distributed.autoscale.minWorkers: must lie in [distributed.minWorkers, distributed.maxWorkers] = [${d.minWorkers}, ${d.maxWorkers}], got ${a.minWorkers}`);
  }
  if (a.maxWorkers !== undefined && a.maxWorkers > d.maxWorkers) {
    problems.push(`distributed.autoscale.maxWorkers: must not exceed distributed.maxWorkers (${a.maxWorkers} > ${d.maxWorkers})`);
  }
  if (a.minWorkers !== undefined && a.maxWorkers !== undefined && a.minWorkers > a.maxWorkers) {
    problems.push(`distributed.autoscale.minWorkers: must not exceed distributed.autoscale.maxWorkers (${a.minWorkers} > ${a.maxWorkers})`);
  }
  return problems;
}

/**
 * Fills the bounds: minWorkers from distributed.minWorkers; maxWorkers from distributed.maxWorkers, both
 * capped at the micro-batches per step (a worker beyond them would have nothing to compute).
 */
export function autoscaleDefaults(spec: ParsedJobSpec, a: ParsedAutoscale, microBatchSize: number): AutoscaleSpec {
  const cap = microBatchesPerStep(spec.training.batchSize, microBatchSize);
  const minWorkers = a.minWorkers ?? spec.distributed.minWorkers;
  const maxWorkers = Math.max(minWorkers, Math.min(a.maxWorkers ?? spec.distributed.maxWorkers, cap));
  return { ...a, minWorkers, maxWorkers };
}
