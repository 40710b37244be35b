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

/** Why a listen failed, in words a user can act on; the system's own message for anything else. */
function listenReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  // grpc-js puts the code only in its message ("No address added ... listen EADDRINUSE: ...").
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? /\b(EADDRINUSE|EACCES|EADDRNOTAVAIL)\b/.exec(message)?.[1];
  switch (code) {
    case 'EADDRINUSE':
      return 'the port is already in use by another process';
    case 'EACCES':
      return 'permission denied (ports below 1024 need privileges)';
    case 'EADDRNOTAVAIL':
      return 'no network interface of this machine has that address';
    default:
      return message;
  }
}

/**
 * A server could not bind its address. Names the server, the address and the flag that chose it, so
 * `listen EADDRINUSE` never reaches a user without saying which of a process's ports it was.
 */
export class ListenError extends ShardwiseError {
  /** The `host:port` that could not be bound. */
  readonly address: string;
  /** The command-line flag that sets it, e.g. `--data-port`. */
  readonly flag: string;
  constructor(server: string, address: string, flag: string, options?: { cause?: unknown }) {
    super(`${server}: cannot listen on ${address}: ${listenReason(options?.cause)}; choose another ${flag} (0 picks a free port)`, options);
    this.name = 'ListenError';
    this.address = address;
    this.flag = flag;
  }
}
