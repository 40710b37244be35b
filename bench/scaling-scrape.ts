/** One scrape of a Prometheus text endpoint: every sample by its series (`name` or `name{labels}`). */
export type Scrape = ReadonlyMap<string, number>;

/** Time left for one scrape; a stuck endpoint must not stall the bench. */
const SCRAPE_TIMEOUT_MS = 5000;

/** Reads `url` (Prometheus text format) into a map from series to value, labels kept as written. */
export async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(url, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
  if (!res.ok) throw new Error(`scrape ${url}: expected HTTP 200, got ${res.status}`);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return out;
}

/**
 * How much `series` grew between two scrapes (counters, histogram sums and counts). A series missing
 * from a scrape counts as 0 there (a histogram label set nobody observed yet).
 */
export function delta(before: Scrape, after: Scrape, series: string): number {
  return (after.get(series) ?? 0) - (before.get(series) ?? 0);
}
