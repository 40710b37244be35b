import { existsSync, openSync, closeSync, readSync, fstatSync } from 'node:fs';
import * as path from 'node:path';
import { decodeMetricsLine, type MetricsRecord, RUN_FILES } from '../common';

/** How often the file is read. */
const POLL_MS = 25;

/** When a step record appeared in a run's metrics.jsonl, by global step. */
export interface StepArrival {
  globalStep: number;
  /** When the trainer recorded the step, on this process's `performance.now()` axis (or when it was read, unstamped). */
  atMs: number;
}

interface Waiter {
  globalStep: number;
  resolve: (arrival: StepArrival) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Follows a run directory's `metrics.jsonl` as the trainer appends to it and notes the moment of each step
 * record. Every trainer (local or coordinator) appends a step's record right after applying its update,
 * stamped with the time (`time`, on the machine's clock), so the time between two records is the wall time
 * of the steps between them, whatever the process layout: one clock for the local reference and for the
 * distributed runs alike. The file is read every POLL_MS (not on every change: this process shares the
 * cores with the processes it measures); a record without a stamp (an older trainer) counts from when it
 * was read.
 */
export class StepClock {
  private readonly file: string;
  private readonly arrivals = new Map<number, StepArrival>();
  private readonly waiters = new Set<Waiter>();
  private fd: number | undefined;
  private offset = 0;
  private partial = '';
  private readonly timer: NodeJS.Timeout;

  /** `onRecord` also hears every other record as it is read, with the time it was read (bench-tta's epoch times). */
  constructor(runDir: string, private readonly onRecord?: (record: MetricsRecord, atMs: number) => void) {
    this.file = path.join(runDir, RUN_FILES.metrics);
    this.timer = setInterval(() => this.read(), POLL_MS);
    this.read();
  }

  /** The arrival of `globalStep`'s record, once it is there; rejects after `timeoutMs`. */
  waitFor(globalStep: number, timeoutMs: number): Promise<StepArrival> {
    this.read();
    const seen = this.arrivals.get(globalStep);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        globalStep,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new Error(`no step record for global step ${globalStep} in ${this.file} within ${timeoutMs} ms ` +
            `(last seen: ${this.lastStep() ?? 'none'})`));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /**
   * Wall milliseconds of each step in `(from, to]`: the time between the record of step g - 1 and that of
   * step g, from their stamps (unstamped records read in one go share a read time, so a single interval can
   * be 0 and its neighbour twice the step).
   */
  stepIntervalsMs(from: number, to: number): number[] {
    const out: number[] = [];
    for (let g = from + 1; g <= to; g++) {
      const a = this.arrivals.get(g - 1);
      const b = this.arrivals.get(g);
      if (!a || !b) throw new Error(`no step record for global step ${a ? g : g - 1} in ${this.file}`);
      out.push(b.atMs - a.atMs);
    }
    return out;
  }

  /** The highest global step recorded so far. */
  lastStep(): number | undefined {
    return this.arrivals.size === 0 ? undefined : Math.max(...this.arrivals.keys());
  }

  /** Stops following the file and fails the pending waits. */
  close(): void {
    clearInterval(this.timer);
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new Error(`stopped following ${this.file} before global step ${w.globalStep}`));
    }
    this.waiters.clear();
  }

  private read(): void {
    const now = performance.now();
    if (this.fd === undefined) {
      if (!existsSync(this.file)) return;
      this.fd = openSync(this.file, 'r');
    }
    const size = fstatSync(this.fd).size;
    if (size <= this.offset) return;
    const buffer = Buffer.alloc(size - this.offset);
    const got = readSync(this.fd, buffer, 0, buffer.length, this.offset);
    this.offset += got;
    const lines = (this.partial + buffer.toString('utf8', 0, got)).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) this.onLine(line, now);
  }

  private onLine(line: string, atMs: number): void {
    if (this.onRecord && line.trim() !== '') this.onRecord(decodeMetricsLine(line), atMs);
    if (!line.includes('"type":"step"')) return;
    const record = decodeMetricsLine(line);
    if (record.type !== 'step' || this.arrivals.has(record.globalStep)) return;
    const arrival = { globalStep: record.globalStep, atMs: record.time === undefined ? atMs : record.time - performance.timeOrigin };
    this.arrivals.set(record.globalStep, arrival);
    for (const w of [...this.waiters]) {
      if (w.globalStep !== record.globalStep) continue;
      clearTimeout(w.timer);
      this.waiters.delete(w);
      w.resolve(arrival);
    }
  }
}
