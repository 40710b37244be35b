import { appendFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { TimelineError } from './errors';
import { type GcSpan, observeGcSpans } from './gc-spans';

/**
 * A per-process recorder of training-step phases for a Chrome trace (`chrome://tracing`, Perfetto), as
 * Horovod's timeline: `--timeline FILE` makes every process of a job write its spans as JSON lines to its
 * own part file in `FILE.parts/`, and the coordinator merges the parts into FILE (`mergeTimeline`).
 *
 * Each process has one timeline, like its one clock: `processTimeline()` is what the step code calls, a
 * recorder that drops everything until the command line opens a real one (`openTimeline`). So a phase is
 * marked with one call where it happens, without threading a recorder through every constructor.
 *
 * Spans of one process sit on one track and nest: every phase is tagged with its global step, and the
 * recorder adds an enclosing `step N` span from the first phase's start to the last phase's end once the
 * process moves on to another step (or closes). Times are microseconds since the Unix epoch
 * (`performance.timeOrigin + performance.now()`), so the processes of one machine share a time axis.
 */

/** One event of the Chrome trace format (JSON object format): a complete span (`X`) or metadata (`M`). */
export interface TraceEvent {
  name: string;
  /** `X`: complete span with `dur`; `M`: metadata (process name). */
  ph: 'X' | 'M';
  pid: number;
  tid: number;
  /** Start, microseconds since the Unix epoch. */
  ts: number;
  /** Duration in microseconds (`X` only). */
  dur?: number;
  /**
   * Category: `step` for the enclosing spans, `phase` for their phases, `background` for work off the critical
   * path, `gc` for the garbage collector's pauses.
   */
  cat?: string;
  args?: Record<string, string | number>;
}

/** Where a process's spans go: its part file and its name in the trace. */
export interface TimelineOptions {
  /** The merged trace's path (`--timeline FILE`); this process writes `FILE.parts/<part>.jsonl`. */
  file: string;
  /** The process's name in the trace (`coordinator`, `worker-1`). */
  processName: string;
  /** @default process.pid */
  pid?: number;
}

/** The step-phase recorder the training code calls; see the file comment. */
export interface Timeline {
  /** Whether spans are kept (false for the default recorder). */
  readonly enabled: boolean;
  /** Now, in the timeline's microseconds: pass it to {@link Timeline.phase} as a phase's start. */
  now(): number;
  /** Records phase `name` of global step `step`, from `startUs` (a `now()`) to now. */
  phase(name: string, step: number, startUs: number, args?: Record<string, string | number>): void;
  /** Starts phase `name` of `step` now; the returned function ends (records) it. */
  begin(name: string, step: number, args?: Record<string, string | number>): () => void;
  /**
   * Records work done off the step's critical path from `startUs` to now (the coordinator's deferred
   * optimizer apply of `step`, which runs inside a later step's phases), on a second track of the process.
   */
  background(name: string, step: number, startUs: number, args?: Record<string, string | number>): void;
  /** Ends the open step span and writes what is buffered. */
  close(): void;
}

/** The parts folder of a merged trace `file`. */
export function timelinePartsDir(file: string): string {
  return `${file}.parts`;
}

/** The track of the step spans and their phases, the one of work off the critical path, and the GC's pauses. */
const STEP_TID = 0;
const BACKGROUND_TID = 1;
const GC_TID = 2;

const epochMicros = (): number => Math.round((performance.timeOrigin + performance.now()) * 1000);

/** The recorder of a process without `--timeline`: keeps nothing. */
class DisabledTimeline implements Timeline {
  readonly enabled = false;
  now(): number {
    return 0;
  }
  phase(): void {}
  begin(): () => void {
    return () => undefined;
  }
  background(): void {}
  close(): void {}
}

/** Writes a process's spans to its part file, one JSON event per line, flushed at each step's end. */
class FileTimeline implements Timeline {
  readonly enabled = true;
  private readonly pid: number;
  private readonly part: string;
  private buffered: TraceEvent[] = [];
  /** The step whose enclosing span is open, with its extent so far. */
  private open: { step: number; startUs: number; endUs: number } | undefined;
  /** GC pauses not yet placed in a step: the step is known once its span ends. */
  private pendingGc: GcSpan[] = [];
  /** The last step span written, for a GC pause reported after its step ended. */
  private lastStep: { step: number; startUs: number; endUs: number } | undefined;
  private readonly stopGcSpans: () => void;

  constructor(options: TimelineOptions) {
    this.pid = options.pid ?? process.pid;
    const dir = timelinePartsDir(options.file);
    const safeName = options.processName.replace(/[^A-Za-z0-9_.-]/g, '_');
    this.part = path.join(dir, `${safeName}-${this.pid}.jsonl`);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new TimelineError(dir, 'cannot create the timeline parts folder', { cause: err });
    }
    this.buffered.push(
      { name: 'process_name', ph: 'M', pid: this.pid, tid: STEP_TID, ts: 0, args: { name: options.processName } },
      { name: 'thread_name', ph: 'M', pid: this.pid, tid: STEP_TID, ts: 0, args: { name: 'step phases' } },
      { name: 'thread_name', ph: 'M', pid: this.pid, tid: BACKGROUND_TID, ts: 0, args: { name: 'off the critical path' } },
      { name: 'thread_name', ph: 'M', pid: this.pid, tid: GC_TID, ts: 0, args: { name: 'garbage collector' } },
    );
    this.flush();
    this.stopGcSpans = observeGcSpans((span) => this.gc(span));
  }

  now(): number {
    return epochMicros();
  }

  phase(name: string, step: number, startUs: number, args?: Record<string, string | number>): void {
    const endUs = epochMicros();
    if (this.open && this.open.step !== step) this.endStep();
    if (!this.open) this.open = { step, startUs, endUs };
    this.open.startUs = Math.min(this.open.startUs, startUs);
    this.open.endUs = Math.max(this.open.endUs, endUs);
    this.buffered.push({ name, cat: 'phase', ph: 'X', pid: this.pid, tid: STEP_TID, ts: startUs, dur: endUs - startUs, args: { step, ...args } });
  }

  begin(name: string, step: number, args?: Record<string, string | number>): () => void {
    const startUs = epochMicros();
    return () => this.phase(name, step, startUs, args);
  }

  background(name: string, step: number, startUs: number, args?: Record<string, string | number>): void {
    const dur = epochMicros() - startUs;
    this.buffered.push({ name, cat: 'background', ph: 'X', pid: this.pid, tid: BACKGROUND_TID, ts: startUs, dur, args: { step, ...args } });
  }

  close(): void {
    this.stopGcSpans();
    if (this.open) this.endStep();
    for (const span of this.pendingGc) this.gcSpan(span, -1);
    this.pendingGc = [];
    this.flush();
  }

  /**
   * A GC pause, kept until the step it fell in is known: one that started inside a step span is tagged with
   * that step, so a phase breakdown counts the collector's time per step; one between steps with -1.
   */
  private gc(span: GcSpan): void {
    const last = this.lastStep;
    if (last && span.startUs <= last.endUs) this.gcSpan(span, span.startUs >= last.startUs ? last.step : -1);
    else this.pendingGc.push(span);
  }

  private gcSpan(span: GcSpan, step: number): void {
    this.buffered.push({ name: `gc ${span.kind}`, cat: 'gc', ph: 'X', pid: this.pid, tid: GC_TID, ts: span.startUs, dur: span.durUs, args: { step } });
  }

  private endStep(): void {
    const { step, startUs, endUs } = this.open!;
    this.open = undefined;
    this.lastStep = { step, startUs, endUs };
    const later = this.pendingGc.filter((span) => span.startUs > endUs);
    for (const span of this.pendingGc) if (span.startUs <= endUs) this.gcSpan(span, span.startUs >= startUs ? step : -1);
    this.pendingGc = later;
    this.buffered.push({ name: `step ${step}`, cat: 'step', ph: 'X', pid: this.pid, tid: STEP_TID, ts: startUs, dur: endUs - startUs, args: { step } });
    this.flush();
  }

  private flush(): void {
    if (this.buffered.length === 0) return;
    const text = this.buffered.map((e) => JSON.stringify(e)).join('\n') + '\n';
    this.buffered = [];
    try {
      appendFileSync(this.part, text);
    } catch (err) {
      throw new TimelineError(this.part, 'cannot append to the timeline part', { cause: err });
    }
  }
}

let current: Timeline = new DisabledTimeline();

/** This process's timeline: a recorder that keeps nothing unless {@link openTimeline} was called. */
export function processTimeline(): Timeline {
  return current;
}

/** Makes this process record its step phases into `options.file`'s parts folder (the `--timeline` flag). */
export function openTimeline(options: TimelineOptions): Timeline {
  current.close();
  current = new FileTimeline(options);
  return current;
}

/** Ends this process's recording (the open step span is written) and goes back to recording nothing. */
export function closeTimeline(): void {
  current.close();
  current = new DisabledTimeline();
}
