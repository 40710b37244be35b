/**
 * What a resumed run keeps of its `metrics.jsonl`. The run restarts from a checkpoint that may be older
 * than the last records written (a crash between two checkpoints): the steps after it are trained again
 * and recorded again, so their first records must go, or the curves would show those steps twice.
 */
import type { MetricsRecord } from './records';

/** Where a resumed run picks up, from its checkpoint. */
export interface ResumePoint {
  /** The epoch it resumes in. */
  epoch: number;
  /** The first step it trains (updates already applied to the checkpoint's weights). */
  globalStep: number;
  /**
   * The last epoch whose start (freeze, unfreeze and learning-rate events) the checkpoint includes:
   * `epoch` when it resumes mid-epoch, `epoch - 1` at an epoch boundary (those events come again).
   */
  enteredEpoch: number;
}

/** The records written before `at`, in their order: the history a resumed run continues. */
export function recordsBefore(records: readonly MetricsRecord[], at: ResumePoint): MetricsRecord[] {
  return records.filter((r) => {
    switch (r.type) {
      case 'step':
      case 'replica-hash':
        return r.globalStep < at.globalStep;
      case 'epoch':
      case 'epoch-report':
        return r.epoch < at.epoch;
      case 'freeze':
      case 'unfreeze':
      case 'lr-change':
        return r.epoch <= at.enteredEpoch;
    }
  });
}
