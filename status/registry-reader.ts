import type { Registry } from 'prom-client';

/** One series of a metric: its labels and value. */
export interface Series {
  labels: Record<string, string | number>;
  value: number;
}

/**
 * Reads the coordinator's own Prometheus registry, the same numbers `/metrics` exports, so the status page
 * and a Grafana dashboard never disagree. Reading a metric does not change it.
 */
export class RegistryReader {
  constructor(private readonly registry: Registry) {}

  /** Every series of `name`; [] when the metric is not registered or has none yet. */
  async series(name: string): Promise<Series[]> {
    const metric = this.registry.getSingleMetric(name);
    if (metric === undefined) return [];
    const { values } = await metric.get();
    return values.map((v) => ({ labels: { ...v.labels } as Record<string, string | number>, value: v.value }));
  }

  /** The value of an unlabelled metric, or of the series whose labels include `match`; null when there is none. */
  async value(name: string, match: Record<string, string> = {}): Promise<number | null> {
    const found = (await this.series(name)).find((s) => Object.entries(match).every(([k, v]) => String(s.labels[k]) === v));
    return found === undefined || !Number.isFinite(found.value) ? null : found.value;
  }

  /** `name`'s value by the value of `label` (e.g. step seconds by worker), finite values only. */
  async byLabel(name: string, label: string): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const s of await this.series(name)) {
      const key = s.labels[label];
      if (key !== undefined && Number.isFinite(s.value)) out.set(String(key), s.value);
    }
    return out;
  }
}
