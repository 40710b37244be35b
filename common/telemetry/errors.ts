import { ShardwiseError } from '../errors';

/** A timeline file or part could not be written or read (`--timeline`). The message names the file. */
export class TimelineError extends ShardwiseError {
  /** The file or folder concerned. */
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    const why = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super(`${path}: ${message}${why}`, options);
    this.name = 'TimelineError';
    this.path = path;
  }
}
