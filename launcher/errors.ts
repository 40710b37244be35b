import { ShardwiseError } from '../common';

/** Base class of the local launcher's errors. */
export class LauncherError extends ShardwiseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LauncherError';
  }
}

/** A child process could not be started at all (its executable is missing or not runnable). */
export class ChildStartError extends LauncherError {
  /** The child's name in logs, e.g. `worker-2`. */
  readonly child: string;
  /** The executable that was spawned. */
  readonly command: string;
  constructor(child: string, command: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ChildStartError';
    this.child = child;
    this.command = command;
  }
}

/** A child process exited while the launcher was waiting for one of its lines (its ready line). */
export class ChildExitedError extends LauncherError {
  readonly child: string;
  /** Exit code, or null when a signal ended it. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The last lines it printed, for the message and for a person reading it. */
  readonly outputTail: string;
  constructor(child: string, waitingFor: string, code: number | null, signal: NodeJS.Signals | null, outputTail: string) {
    const how = signal !== null ? `signal ${signal}` : `exit code ${code}`;
    const tail = outputTail.trim() === '' ? ' and printed nothing' : `; its last output:\n${outputTail}`;
    super(`${child} ended (${how}) while waiting for ${waitingFor}${tail}`);
    this.name = 'ChildExitedError';
    this.child = child;
    this.code = code;
    this.signal = signal;
    this.outputTail = outputTail;
  }
}

/** A child process did not print the awaited line in time. It is left running; the caller decides. */
export class ChildTimeoutError extends LauncherError {
  readonly child: string;
  readonly timeoutMs: number;
  constructor(child: string, waitingFor: string, timeoutMs: number, outputTail: string) {
    super(`${child}: expected ${waitingFor} within ${timeoutMs} ms, not seen; its last output:\n${outputTail || '(nothing)'}`);
    this.name = 'ChildTimeoutError';
    this.child = child;
    this.timeoutMs = timeoutMs;
  }
}

/** `nats-server` is not on PATH. */
export class NatsServerMissingError extends LauncherError {
  readonly command: string;
  constructor(command: string, options?: { cause?: unknown }) {
    super(
      `expected the NATS server binary '${command}' on PATH, found none; install it (Debian/Ubuntu: ` +
        'apt-get install nats-server), or run the cluster without the event bus with --no-bus',
      options,
    );
    this.name = 'NatsServerMissingError';
    this.command = command;
  }
}
