import { ChildStartError, LauncherError, NatsServerMissingError } from './errors';
import { ManagedChild } from './child-process';

/** Options of {@link startLocalNats}. */
export interface LocalNatsOptions {
  /** The server binary. @default 'nats-server' (looked up on PATH) */
  command?: string;
  /** Interface to bind. @default '127.0.0.1' */
  host?: string;
  /** Port to bind; 0 lets the server pick a free one and report it (no race with other processes). @default 0 */
  port?: number;
  /** Receives the server's log lines (it logs little: start, stop, errors). @default dropped */
  onLine?: (line: string) => void;
  /** Give up when the server is not ready by then. @default 15000 */
  startTimeoutMs?: number;
}

/** A nats-server child process and the URL clients use. */
export interface LocalNats {
  /** e.g. `nats://127.0.0.1:41234`. */
  url: string;
  port: number;
  process: ManagedChild;
}

// nats-server logs `Listening for client connections on 127.0.0.1:41234`, then `Server is ready`.
const LISTENING_PATTERN = /Listening for client connections on (\S+):(\d+)/;
const READY_PATTERN = /Server is ready/;

/**
 * Starts a core NATS server (no JetStream, no config file) for one local cluster. With port 0 the server
 * is given `-p -1` (pick a random free port) and the port is read from its log, so two clusters started
 * at once cannot race for the same port.
 * @throws NatsServerMissingError when the binary is not installed; LauncherError when it does not start.
 */
export async function startLocalNats(options: LocalNatsOptions = {}): Promise<LocalNats> {
  const command = options.command ?? 'nats-server';
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 0;
  const child = ManagedChild.spawn({
    name: 'nats-server',
    command,
    args: ['-a', host, '-p', port === 0 ? '-1' : String(port)],
    onLine: options.onLine ? (line) => options.onLine!(line) : undefined,
  });
  try {
    const timeoutMs = options.startTimeoutMs ?? 15_000;
    const listening = await child.waitForLine(LISTENING_PATTERN, { what: 'its client port', timeoutMs });
    await child.waitForLine(READY_PATTERN, { what: "'Server is ready'", timeoutMs });
    const bound = Number(listening[2]);
    return { url: `nats://${host}:${bound}`, port: bound, process: child };
  } catch (err) {
    await child.stop({ graceMs: 2000 });
    if (err instanceof ChildStartError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      throw new NatsServerMissingError(command, { cause: err });
    }
    throw new LauncherError(`nats-server did not start: ${(err as Error).message}`, { cause: err });
  }
}
