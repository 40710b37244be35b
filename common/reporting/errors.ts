import { ShardwiseError } from '../errors';

/** A run directory could not be created, written or read (bad name, permissions, missing folder). */
export class RunDirectoryError extends ShardwiseError {
  /** The file or folder the operation was on. */
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RunDirectoryError';
    this.path = path;
  }
}

/** A line of `metrics.jsonl` is not valid JSON or not a record of a known shape. */
export class MetricsFormatError extends ShardwiseError {
  /** The metrics file. */
  readonly path: string;
  /** 1-based line number of the offending line, as an editor shows it. */
  readonly line: number;
  constructor(path: string, line: number, message: string, options?: { cause?: unknown }) {
    super(`${path}:${line}: ${message}`, options);
    this.name = 'MetricsFormatError';
    this.path = path;
    this.line = line;
  }
}

/** The thread that draws the curves failed or exited while drawing (see CurveThread). */
export class CurveThreadError extends ShardwiseError {
  /** The run folder the curves were for. */
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CurveThreadError';
    this.path = path;
  }
}
