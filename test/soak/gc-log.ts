/**
 * Reading the coordinator's GC log that gc-probe.mjs writes, and summing up a window of it: pauses by
 * kind, what the old space gained per second between full GCs (what was promoted), and the live heap a
 * full GC left.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

/** The preload that writes the log (plain JavaScript, given to node with `--import`), as a file URL. */
export const GC_PROBE_URL = pathToFileURL(path.join(__dirname, 'gc-probe.mjs')).href;

/** One GC of the coordinator. */
export interface GcEntry {
  /** Start, epoch ms. */
  t: number;
  /** Pause, ms. */
  ms: number;
  kind: string;
  /** Old space used after it, MiB. */
  oldMb: number;
  /** The old generation (every space but the young one) used after it, MiB: what --max-old-space-size caps. */
  oldGenMb: number;
}

/** The GC figures of a window of the run. */
export interface GcSummary {
  seconds: number;
  majorCount: number;
  majorPauseMsTotal: number;
  majorPauseMsMax: number;
  minorCount: number;
  minorPauseMsTotal: number;
  /** Old-space growth between full GCs per second: what was promoted, MiB/s. */
  promotedMbPerS: number;
  /** The old generation used after the window's first and last full GC, MiB (NaN without one): the live heap. */
  liveHeapFirstMb: number;
  liveHeapLastMb: number;
}

/** The entries of `file`; empty when the process wrote none. @throws on a line that is not an entry */
export function readGcLog(file: string): GcEntry[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line, k) => {
    const e = JSON.parse(line) as GcEntry;
    if (typeof e.t !== 'number' || typeof e.ms !== 'number' || typeof e.kind !== 'string') throw new Error(`${file}:${k + 1}: expected a GC entry, got ${line}`);
    return e;
  });
}

/** Sums up the entries from `from` to `to` (epoch ms). */
export function summarizeGc(all: readonly GcEntry[], from: number, to: number): GcSummary {
  const gc = all.filter((g) => g.t >= from && g.t <= to);
  const majors = gc.filter((g) => g.kind === 'major');
  const minors = gc.filter((g) => g.kind === 'minor');
  let promoted = 0;
  for (let k = 1; k < gc.length; k++) {
    // A full GC shrinks the old space; only growth is promotion.
    if (gc[k].kind !== 'major') promoted += Math.max(0, gc[k].oldMb - gc[k - 1].oldMb);
  }
  const seconds = (to - from) / 1000;
  return {
    seconds,
    majorCount: majors.length,
    majorPauseMsTotal: majors.reduce((s, g) => s + g.ms, 0),
    majorPauseMsMax: majors.reduce((m, g) => Math.max(m, g.ms), 0),
    minorCount: minors.length,
    minorPauseMsTotal: minors.reduce((s, g) => s + g.ms, 0),
    promotedMbPerS: promoted / seconds,
    liveHeapFirstMb: majors.length ? majors[0].oldGenMb : Number.NaN,
    liveHeapLastMb: majors.length ? majors[majors.length - 1].oldGenMb : Number.NaN,
  };
}

/** The `# ...` companion line of a summary. */
export function gcLine(s: GcSummary, steps: number): string {
  return `# coordinator gc over ${steps} steps (${s.seconds.toFixed(0)} s): major n=${s.majorCount} pause_ms_total=${s.majorPauseMsTotal.toFixed(0)} ` +
    `pause_ms_max=${s.majorPauseMsMax.toFixed(1)}; minor n=${s.minorCount} pause_ms_total=${s.minorPauseMsTotal.toFixed(0)} ` +
    `(${(s.minorPauseMsTotal / Math.max(1, steps)).toFixed(2)} ms/step); promoted_mb_per_s=${s.promotedMbPerS.toFixed(2)}; ` +
    `live_old_gen_mb first=${s.liveHeapFirstMb.toFixed(0)} last=${s.liveHeapLastMb.toFixed(0)}`;
}
