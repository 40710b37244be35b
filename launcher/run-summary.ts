import * as fs from 'node:fs';
import * as path from 'node:path';
import { RUN_FILES } from '../common';

/** The last finished epoch of a run, as `metrics.jsonl` recorded it. */
export interface FinalEpoch {
  epoch: number;
  /** Validation top-1 / top-5 accuracy (fractions) and loss; NaN when the run had no validation. */
  top1: number;
  top5: number;
  loss: number;
}

/**
 * The last `epoch` record of a run directory, or undefined when none was written (the job stopped before
 * its first epoch ended). Reads the lines itself rather than through `readMetrics`, so a record type this
 * launcher does not know, or a last line cut short by a kill, does not hide the epochs before it.
 */
export function readFinalEpoch(runDir: string): FinalEpoch | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(runDir, RUN_FILES.metrics), 'utf8');
  } catch {
    return undefined;
  }
  let last: FinalEpoch | undefined;
  for (const line of text.split('\n')) {
    let record: { type?: unknown; epoch?: unknown; val?: { top1?: unknown; top5?: unknown; loss?: unknown } };
    try {
      record = JSON.parse(line) as typeof record;
    } catch {
      continue;
    }
    if (record.type !== 'epoch' || typeof record.epoch !== 'number') continue;
    last = { epoch: record.epoch, top1: Number(record.val?.top1), top5: Number(record.val?.top5), loss: Number(record.val?.loss) };
  }
  return last;
}

/** One line for the end of a run: where it is and how good the model got. */
export function describeFinalEpoch(runDir: string, final: FinalEpoch | undefined): string {
  if (!final) return `run directory ${runDir} (no epoch finished)`;
  const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : 'n/a');
  const loss = Number.isFinite(final.loss) ? final.loss.toFixed(4) : 'n/a';
  return `after epoch ${final.epoch + 1}: validation top-1 ${pct(final.top1)}, top-5 ${pct(final.top5)}, loss ${loss}; run directory ${runDir}`;
}
