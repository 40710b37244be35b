/**
 * Base class of every error shardwise throws on purpose. Subclasses set `name`, keep the `cause`,
 * and carry readonly context so callers can use `instanceof` and report the problem precisely.
 */
export class ShardwiseError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ShardwiseError';
  }
}

/** A user-supplied value (option, job spec field, CLI flag) is invalid. */
export class ConfigError extends ShardwiseError {
  /** Dotted path of the offending field, e.g. `optimizer.learningRate`. */
  readonly field: string;
  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super(`${field}: ${message}`, options);
    this.name = 'ConfigError';
    this.field = field;
  }
}
