/**
 * The folder one training run leaves behind: the job spec it ran with, its metrics as they happened,
 * checkpoints, a summary and the curves. Everything a person or a later tool needs to understand or
 * resume the run lives there and nowhere else.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { MetricsFormatError, RunDirectoryError } from './errors';
import { decodeMetricsLine, encodeMetricsLine, type MetricsRecord } from './records';

/** File names inside a run directory, in one place so readers and writers agree. */
export const RUN_FILES = {
  jobYaml: 'job.yaml',
  jobJson: 'job.json',
  metrics: 'metrics.jsonl',
  summary: 'summary.json',
  checkpoint: 'checkpoint',
  checkpoints: 'checkpoints',
} as const;

// Letters, digits, dot, dash, underscore: safe as one path segment on every filesystem we target.
const RUN_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
// Enough attempts to get past any realistic number of runs started with the same name in one second.
const MAX_SUFFIX = 1000;

/** Options of `RunDirectory.create`. */
export interface CreateRunOptions {
  /** The run's start time, which names the folder. @default new Date() */
  now?: Date;
}

/** Options of `readMetrics`. */
export interface ReadMetricsOptions {
  /**
   * Skip an unparseable last line that has no newline: what a process killed in mid-write leaves.
   * Off by default, so a damaged file is never read silently. @default false
   */
  allowTruncatedTail?: boolean;
}

/** `2025-03-01T09:05:07.123Z` -> `20250301T090507Z`: sortable, no characters a filesystem dislikes. */
export function utcStamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

/** A run's folder and the writers for what goes in it. */
export class RunDirectory {
  /** Absolute path of the run folder. */
  readonly dir: string;
  /**
   * `metrics.jsonl` opened for appending, from the first append to `close` (reopened by an append after
   * it). A step appends a line or two, and opening and closing the file for each was a tenth of the
   * coordinator's CPU per step in the near-empty job.
   */
  private metricsFd: number | undefined = undefined;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Creates `<runsDir>/<name>-<UTC timestamp>` (adding `-2`, `-3`, ... if that exists), creating
   * `runsDir` as needed. The final folder is made with a non-recursive mkdir, which fails rather than
   * reuse an existing folder, so two runs never write into the same one.
   */
  static create(runsDir: string, name: string, options: CreateRunOptions = {}): RunDirectory {
    if (!RUN_NAME_PATTERN.test(name)) {
      throw new RunDirectoryError(runsDir,
        `run name: expected letters, digits, '.', '-' or '_' (not starting with '.', '-' or '_'), found ${JSON.stringify(name)}`);
    }
    const parent = path.resolve(runsDir);
    try {
      fs.mkdirSync(parent, { recursive: true });
    } catch (err) {
      throw new RunDirectoryError(parent, `cannot create runs folder ${parent}: ${(err as Error).message}`, { cause: err });
    }
    const base = `${name}-${utcStamp(options.now ?? new Date())}`;
    for (let n = 1; n <= MAX_SUFFIX; n++) {
      const dir = path.join(parent, n === 1 ? base : `${base}-${n}`);
      try {
        fs.mkdirSync(dir);
        return new RunDirectory(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw new RunDirectoryError(dir, `cannot create run folder ${dir}: ${(err as Error).message}`, { cause: err });
      }
    }
    throw new RunDirectoryError(parent, `expected a free name for run ${base}, found ${MAX_SUFFIX} taken`);
  }

  /** Opens an existing run folder, e.g. to draw its curves again after the run. */
  static open(dir: string): RunDirectory {
    const abs = path.resolve(dir);
    if (!fs.statSync(abs, { throwIfNoEntry: false })?.isDirectory()) {
      throw new RunDirectoryError(abs, `expected a run folder at ${abs}, found none`);
    }
    return new RunDirectory(abs);
  }

  /** Path of a file inside the run folder. */
  file(name: string): string {
    return path.join(this.dir, name);
  }

  /** Writes the validated job spec as `job.yaml` (for people) and `job.json` (for tools). */
  writeJobSpec(spec: unknown): void {
    writeFileAtomic(this.file(RUN_FILES.jobYaml), YAML.stringify(spec));
    writeFileAtomic(this.file(RUN_FILES.jobJson), `${JSON.stringify(spec, null, 2)}\n`);
  }

  /**
   * Appends one record to `metrics.jsonl`. Each line goes to the kernel in a single append before this
   * returns (no buffering in the process), so a crash loses at most the line being written.
   */
  appendMetrics(record: MetricsRecord): void {
    const file = this.file(RUN_FILES.metrics);
    try {
      this.metricsFd ??= fs.openSync(file, 'a');
      // A regular file takes the whole line in one write; the loop only guards a short write.
      const line = Buffer.from(encodeMetricsLine(record));
      for (let done = 0; done < line.length; ) done += fs.writeSync(this.metricsFd, line, done);
    } catch (err) {
      throw new RunDirectoryError(file, `cannot append to ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Replaces `metrics.jsonl` with `records` in one atomic rename (a resumed run drops what it redoes). */
  rewriteMetrics(records: readonly MetricsRecord[]): void {
    this.close(); // the next append opens the new file, not the one the rename replaces
    writeFileAtomic(this.file(RUN_FILES.metrics), records.map(encodeMetricsLine).join(''));
  }

  /** Closes `metrics.jsonl` if an append opened it; a later append opens it again. */
  close(): void {
    if (this.metricsFd === undefined) return;
    const fd = this.metricsFd;
    this.metricsFd = undefined;
    fs.closeSync(fd);
  }

  /** Reads this run's `metrics.jsonl`; see `readMetrics`. */
  readMetrics(options?: ReadMetricsOptions): MetricsRecord[] {
    return readMetrics(this.dir, options);
  }

  /**
   * The folder (created if missing) to save a checkpoint in: `checkpoint/` for the latest one, or
   * `checkpoints/epoch-003/` to keep the checkpoint taken after a given (0-based) epoch.
   */
  checkpointDir(epoch?: number): string {
    if (epoch !== undefined && !(Number.isInteger(epoch) && epoch >= 0)) {
      throw new RunDirectoryError(this.dir, `checkpoint epoch: expected an integer >= 0, found ${epoch}`);
    }
    const dir = epoch === undefined
      ? this.file(RUN_FILES.checkpoint)
      : path.join(this.dir, RUN_FILES.checkpoints, `epoch-${String(epoch).padStart(3, '0')}`);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** Writes `summary.json` (replacing any earlier one atomically). */
  writeSummary(summary: unknown): void {
    writeFileAtomic(this.file(RUN_FILES.summary), `${JSON.stringify(summary, null, 2)}\n`);
  }
}

/**
 * Parses `<dir>/metrics.jsonl` back into records. A line that is not a valid record is a
 * `MetricsFormatError` naming the file and its 1-based line number; blank lines are skipped.
 */
export function readMetrics(dir: string, options: ReadMetricsOptions = {}): MetricsRecord[] {
  const file = path.join(dir, RUN_FILES.metrics);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new RunDirectoryError(file, `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const lines = text.split('\n');
  // A complete file ends with '\n', so the last element is '' unless the last write was cut short.
  const lastIndex = lines.length - 1;
  const records: MetricsRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '') continue;
    try {
      records.push(decodeMetricsLine(line));
    } catch (err) {
      if (i === lastIndex && options.allowTruncatedTail) break;
      const tail = i === lastIndex ? ' (last line, no newline: the run may have been killed while writing it)' : '';
      throw new MetricsFormatError(file, i + 1, `${(err as Error).message}${tail}`, { cause: err });
    }
  }
  return records;
}

// Write-then-rename, so a reader (or a crash) never sees half a summary or spec.
function writeFileAtomic(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, content);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw new RunDirectoryError(file, `cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
}
