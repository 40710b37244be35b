import type { ThroughputMeasurement } from './autoscale-rule';

/** What the autoscaler sees of the job at one look. */
export interface JobProgress {
  /** The active workers, each with the last global step it had a share counted at (0 before any). */
  active: readonly { id: string; lastCountedStep: number }[];
  /** The worker count asked for. */
  desiredWorkers: number;
  /** Steps committed so far. */
  step: number;
  atMs: number;
}

/** Where a window opened: steps committed and the time, with `workers` active and warmed up. */
interface Window {
  workers: number;
  step: number;
  atMs: number;
}

/**
 * Cuts the job's progress into throughput measurements for the {@link AutoscaleRule}, free of clocks and
 * I/O: a measurement is `measureSteps` steps at a steady worker count.
 *
 * - Steady: the active count is the desired one, and every active worker has had a share counted at a
 *   step after the one the active set last changed at. A new worker's first share carries its warm-up
 *   (weights download, the first kernels run), seconds that say nothing about what it adds once running;
 *   counted, they made a worker just added look useless, so it was removed again and the count was
 *   capped below it for good. (The same holds for the first workers at the job's start.)
 * - A window spanning an epoch end is dropped: its evaluation is not training.
 */
export class ThroughputWindows {
  private window: Window | undefined;
  /** The active workers (their ids) and the committed steps when they last changed. */
  private members: { ids: string; sinceStep: number } | undefined;

  constructor(
    private readonly measureSteps: number,
    private readonly samplesPerStep: number,
    private readonly stepsPerEpoch: number,
  ) {}

  /** Takes one look at the job; returns a measurement when a window just closed. */
  look(p: JobProgress): ThroughputMeasurement | undefined {
    const workers = p.active.length;
    const ids = p.active.map((w) => w.id).sort().join(' ');
    if (ids !== this.members?.ids) this.members = { ids, sinceStep: p.step };
    const sinceStep = this.members.sinceStep;
    const steady = workers === p.desiredWorkers && p.active.every((w) => w.lastCountedStep > sinceStep);
    const w = this.window;
    if (!steady || !w || w.workers !== workers) {
      this.window = steady ? { workers, step: p.step, atMs: p.atMs } : undefined;
      return undefined;
    }
    if (p.step - w.step < this.measureSteps) return undefined;
    this.window = { workers, step: p.step, atMs: p.atMs };
    const sameEpoch = Math.floor((p.step - 1) / this.stepsPerEpoch) === Math.floor(w.step / this.stepsPerEpoch);
    if (!sameEpoch || !(p.atMs > w.atMs)) return undefined;
    const samples = (p.step - w.step) * this.samplesPerStep;
    return { workers, samplesPerSecond: (1000 * samples) / (p.atMs - w.atMs), atMs: p.atMs };
  }
}
