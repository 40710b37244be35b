import { ShardwiseError } from '../errors';

/** The metrics HTTP endpoint could not listen (port in use, address not available, no permission). */
export class MetricsServerError extends ShardwiseError {
  readonly host: string;
  readonly port: number;
  constructor(host: string, port: number, options?: { cause?: unknown }) {
    const why = options?.cause instanceof Error ? options.cause.message : String(options?.cause);
    super(`expected to serve metrics on ${host}:${port}, but listen failed: ${why}`, options);
    this.name = 'MetricsServerError';
    this.host = host;
    this.port = port;
  }
}

/** A timeline file or part could not be written or read (`--timeline`). */
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
