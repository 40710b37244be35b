/**
 * What the soak's slow steps are made of: each interval between one worker's consecutive steps is put in
 * one class (the first that applies) so the overall p99 can be read as a sum of causes:
 * - `epoch_end`: the step that opened a new epoch, after the validation pass and the replica hash check;
 * - `checkpoint`: a step next to a checkpoint (every `checkpointEverySteps`);
 * - `gc_major`: a step during which the coordinator paused for a full (mark-compact) GC;
 * - `steady`: the rest, the step overhead proper.
 * The overall p50/p99 stay in the soak line; this only adds companions.
 */
import type { GcEntry } from './gc-log';

/** One step line of the timed worker: when it came (epoch ms), its global step and epoch. */
export interface StepMark {
  t: number;
  step: number;
  epoch: number;
}

/** The classes, in the order they are tested. */
export const INTERVAL_CLASSES = ['epoch_end', 'checkpoint', 'gc_major', 'steady'] as const;
/** One class of interval. */
export type IntervalClass = (typeof INTERVAL_CLASSES)[number];

/** The figures of one class. */
export interface ClassFigures {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** How many of the run's slowest 1% of intervals are of this class. */
  inSlowest: number;
}

/** The value at percentile `p` of ascending `sorted` (nearest rank); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function classOf(prev: StepMark, cur: StepMark, checkpointEverySteps: number, majors: readonly GcEntry[]): IntervalClass {
  if (cur.epoch !== prev.epoch) return 'epoch_end';
  if (prev.step % checkpointEverySteps === 0 || cur.step % checkpointEverySteps === 0) return 'checkpoint';
  if (majors.some((g) => g.t < cur.t && g.t + g.ms > prev.t)) return 'gc_major';
  return 'steady';
}

/**
 * The intervals between consecutive `marks` (ascending), classified and summed up by class.
 * @param gc the coordinator's GCs (its major ones are matched by time)
 */
export function breakDownSteps(marks: readonly StepMark[], checkpointEverySteps: number, gc: readonly GcEntry[]): Record<IntervalClass, ClassFigures> {
  const majors = gc.filter((g) => g.kind === 'major');
  const intervals = marks.slice(1).map((cur, k) => ({ ms: cur.t - marks[k].t, kind: classOf(marks[k], cur, checkpointEverySteps, majors) }));
  const slowest = [...intervals].sort((a, b) => b.ms - a.ms).slice(0, Math.max(1, Math.ceil(intervals.length / 100)));
  const figures = {} as Record<IntervalClass, ClassFigures>;
  for (const kind of INTERVAL_CLASSES) {
    const ms = intervals.filter((i) => i.kind === kind).map((i) => i.ms).sort((a, b) => a - b);
    figures[kind] = {
      count: ms.length, p50Ms: percentile(ms, 50), p99Ms: percentile(ms, 99), maxMs: ms.length ? ms[ms.length - 1] : Number.NaN,
      inSlowest: slowest.filter((i) => i.kind === kind).length,
    };
  }
  return figures;
}

/** The `# ...` companion line of the breakdown. */
export function breakdownLine(figures: Record<IntervalClass, ClassFigures>): string {
  const slowest = INTERVAL_CLASSES.reduce((n, k) => n + figures[k].inSlowest, 0);
  return `# step intervals by cause (the slowest 1% = ${slowest}): ` + INTERVAL_CLASSES.map((k) => {
    const f = figures[k];
    return `${k} n=${f.count} p50_ms=${f.p50Ms.toFixed(1)} p99_ms=${f.p99Ms.toFixed(1)} max_ms=${f.maxMs.toFixed(1)} in_slowest=${f.inSlowest}`;
  }).join('; ');
}
