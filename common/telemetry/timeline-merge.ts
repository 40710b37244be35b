import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { TimelineError } from './errors';
import { type TraceEvent, timelinePartsDir } from './timeline';

/** What {@link mergeTimeline} wrote. */
export interface MergedTimeline {
  file: string;
  /** Part files merged (one per process that recorded). */
  parts: number;
  events: number;
}

/**
 * Merges every process's part (`FILE.parts/*.jsonl`, see `openTimeline`) into FILE as a Chrome trace
 * (`{ "traceEvents": [...] }`, which chrome://tracing and ui.perfetto.dev open), written atomically. A part's
 * last line may be cut short by a process still writing or killed mid-write: that line is left out, since
 * the trace is a report; any other malformed line is an error naming the part and line.
 */
export function mergeTimeline(file: string): MergedTimeline {
  const dir = timelinePartsDir(file);
  if (!existsSync(dir)) throw new TimelineError(dir, 'no timeline parts folder: no process recorded a timeline for this file');
  const parts = readdirSync(dir).filter((name) => name.endsWith('.jsonl')).sort();
  const events: TraceEvent[] = [];
  for (const name of parts) {
    const lines = readFileSync(path.join(dir, name), 'utf8').split('\n');
    for (const [i, line] of lines.entries()) {
      if (line.trim() === '') continue;
      try {
        events.push(JSON.parse(line) as TraceEvent);
      } catch (err) {
        if (i === lines.length - 1) continue;
        throw new TimelineError(path.join(dir, name), `line ${i + 1} is not a JSON trace event`, { cause: err });
      }
    }
  }
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, JSON.stringify({ traceEvents: events, displayTimeUnit: 'ms' }));
    renameSync(tmp, file);
  } catch (err) {
    throw new TimelineError(file, 'cannot write the merged timeline', { cause: err });
  }
  return { file, parts: parts.length, events: events.length };
}
