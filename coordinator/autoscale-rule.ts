import type { AutoscaleSpec } from '../common';

/** A throughput measured over `measureSteps` steps during which `workers` workers were active. */
export interface ThroughputMeasurement {
  workers: number;
  /** Training samples per second of the whole job. */
  samplesPerSecond: number;
  /** When the measurement ended (ms on the autoscaler's clock). */
  atMs: number;
}

/** A change the rule asks for. */
export interface ScaleDecision {
  workers: number;
  reason: string;
}

/**
 * The autoscaling rule of `distributed.autoscale`, free of clocks and I/O: fed measurements, it says when
 * to add or remove a worker.
 *
 * - The one-worker rate is the per-worker throughput measured at the smallest worker count the job has
 *   run with (it may have started with two; then two is the reference).
 * - Efficiency at n workers = (throughput / n) / the one-worker rate.
 * - At or above `minEfficiency`: add a worker, up to maxWorkers. Below it: remove one, and never grow
 *   past that count again (the job showed that many do not pay off).
 * - Below minWorkers: back up to it at once. Otherwise no change within `cooldownMs` of the last one,
 *   and none before a measurement taken wholly after it.
 */
export class AutoscaleRule {
  /** Latest per-worker throughput by worker count. */
  private readonly perWorker = new Map<number, number>();
  private ceiling: number;
  private lastChangeMs = Number.NEGATIVE_INFINITY;
  private latest: ThroughputMeasurement | undefined;

  constructor(private readonly spec: AutoscaleSpec) {
    this.ceiling = spec.maxWorkers;
  }

  /** Records a measurement (ignored when no worker was active). */
  observe(m: ThroughputMeasurement): void {
    if (m.workers < 1 || !(m.samplesPerSecond > 0)) return;
    this.perWorker.set(m.workers, m.samplesPerSecond / m.workers);
    this.latest = m;
  }

  /** The one-worker rate: per-worker throughput at the smallest count measured; undefined before any. */
  get oneWorkerRate(): number | undefined {
    const smallest = Math.min(...this.perWorker.keys());
    return this.perWorker.get(smallest);
  }

  /** Efficiency at `workers` (per-worker rate over the one-worker rate), if measured. */
  efficiency(workers: number): number | undefined {
    const rate = this.perWorker.get(workers);
    const base = this.oneWorkerRate;
    return rate === undefined || base === undefined ? undefined : rate / base;
  }

  /** The efficiency at every worker count measured so far, by count. */
  efficiencies(): Map<number, number> {
    return new Map([...this.perWorker.keys()].map((workers) => [workers, this.efficiency(workers)!]));
  }

  /** What to scale to now with `desired` workers asked for, or null to leave it. */
  decide(desired: number, nowMs: number): ScaleDecision | null {
    const { minWorkers, maxWorkers, minEfficiency, cooldownMs } = this.spec;
    if (desired < minWorkers) return this.change(minWorkers, `below autoscale.minWorkers (${minWorkers})`, nowMs);
    if (desired > maxWorkers) return this.change(maxWorkers, `above autoscale.maxWorkers (${maxWorkers})`, nowMs);
    if (nowMs - this.lastChangeMs < cooldownMs) return null;
    const m = this.latest;
    if (!m || m.atMs <= this.lastChangeMs || m.workers !== desired) return null;
    const efficiency = this.efficiency(desired)!;
    const pct = `${(100 * efficiency).toFixed(0)}% of the one-worker rate`;
    if (efficiency >= minEfficiency) {
      if (desired >= this.ceiling) return null;
      return this.change(desired + 1, `throughput per worker at ${desired} is ${pct} (>= ${100 * minEfficiency}%)`, nowMs);
    }
    this.ceiling = Math.max(minWorkers, desired - 1);
    if (desired <= minWorkers) return null;
    return this.change(desired - 1, `throughput per worker at ${desired} is ${pct} (< ${100 * minEfficiency}%)`, nowMs);
  }

  private change(workers: number, reason: string, nowMs: number): ScaleDecision {
    this.lastChangeMs = nowMs;
    return { workers, reason };
  }
}
