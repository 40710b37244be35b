import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';

/** One pause of this process's garbage collector, in the timeline's microseconds since the Unix epoch. */
export interface GcSpan {
  /** `major` (mark-compact), `minor` (scavenge), `incremental` (a marking step) or `weakcb` (weak callbacks). */
  kind: string;
  startUs: number;
  durUs: number;
}

const KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

/**
 * Calls `onSpan` with every garbage-collector pause of this process's main thread from now on, each just
 * after it ended (a PerformanceObserver: delivered on a later turn of the event loop, so a pause inside a
 * long synchronous phase is reported after that phase). Returns the function that stops observing.
 */
export function observeGcSpans(onSpan: (span: GcSpan) => void): () => void {
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) onSpan(gcSpan(entry));
  });
  observer.observe({ entryTypes: ['gc'] });
  return () => observer.disconnect();
}

function gcSpan(entry: PerformanceEntry): GcSpan {
  const detail = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail;
  const kind = KINDS[detail?.kind ?? -1] ?? 'other';
  return { kind, startUs: Math.round((performance.timeOrigin + entry.startTime) * 1000), durUs: Math.round(entry.duration * 1000) };
}
