/* global process */
/**
 * The soak's window into the coordinator's garbage collector, preloaded with `--import` (plain JavaScript,
 * so it loads before tsx): every GC the process runs, as one JSON line in $SHARDWISE_SOAK_GC_FILE:
 * `{"t": epoch ms at its start, "ms": its pause, "kind": "major" | "minor" | "incremental" | "weakcb",
 * "oldMb": old space used after it, "oldGenMb": the old generation used after it}`. run-soak.ts reads it to tell GC
 * pauses apart from the other slow steps, to measure what is promoted per second (the old space's growth
 * between full GCs) and the live heap (what a full GC leaves). The observer reports a GC just after it
 * ends, so the sizes are the heap as the collector left it, give or take a few allocations.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { PerformanceObserver, constants, performance } from 'node:perf_hooks';
import v8 from 'node:v8';

const file = process.env.SHARDWISE_SOAK_GC_FILE;
if (file) {
  const fd = openSync(file, 'w');
  const KINDS = {
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
  };
  const MIB = 1024 * 1024;
  const YOUNG = new Set(['new_space', 'new_large_object_space']);
  let pending = [];
  const flush = () => {
    if (pending.length > 0) writeSync(fd, pending.join(''));
    pending = [];
  };
  const observer = new PerformanceObserver((list) => {
    const spaces = v8.getHeapSpaceStatistics();
    const old = spaces.find((s) => s.space_name === 'old_space');
    // The old generation is every space but the young one: what --max-old-space-size caps.
    const oldGenMb = spaces.filter((s) => !YOUNG.has(s.space_name)).reduce((sum, s) => sum + s.space_used_size, 0) / MIB;
    for (const entry of list.getEntries()) {
      pending.push(`${JSON.stringify({
        t: performance.timeOrigin + entry.startTime, ms: entry.duration, kind: KINDS[entry.detail.kind] ?? String(entry.detail.kind),
        oldMb: old ? old.space_used_size / MIB : 0, oldGenMb,
      })}\n`);
    }
    // Batched: a write per GC would add a syscall to every scavenge of the process being measured.
    if (pending.length >= 200) flush();
  });
  observer.observe({ entryTypes: ['gc'] });
  process.on('exit', () => {
    flush();
    closeSync(fd);
  });
}
