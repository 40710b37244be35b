import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { BUS_ROLES, type BusRole, makeNatsCredentials, natsAuthorization, type NatsCredentials, writeNatsCredentials } from '../common';
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
  /**
   * Require a user per role (coordinator, worker, launcher) with fresh random passwords, and let only the
   * coordinator publish this job's events. Without it anyone who reaches the port may publish. @default none
   */
  secureJob?: string;
}

/** The users of a secured server: their credentials, and files holding them (mode 0600) to pass on. */
export interface LocalNatsAccess {
  credentials: Record<BusRole, NatsCredentials>;
  /** `--nats-credentials` file of each role; removed when the server exits. */
  files: Record<BusRole, string>;
}

/** A nats-server child process and the URL clients use. */
export interface LocalNats {
  /** e.g. `nats://127.0.0.1:41234`. */
  url: string;
  port: number;
  process: ManagedChild;
  /** Present when started with `secureJob`. */
  access?: LocalNatsAccess;
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
  const secured = options.secureJob === undefined ? undefined : writeAccess(options.secureJob);
  const child = ManagedChild.spawn({
    name: 'nats-server',
    command,
    // Flags after -c override the file, so the address is still the caller's.
    args: [...(secured ? ['-c', secured.config] : []), '-a', host, '-p', port === 0 ? '-1' : String(port)],
    onLine: options.onLine ? (line) => options.onLine!(line) : undefined,
  });
  if (secured) void child.exited.then(() => fs.rmSync(secured.dir, { recursive: true, force: true }));
  try {
    const timeoutMs = options.startTimeoutMs ?? 15_000;
    const listening = await child.waitForLine(LISTENING_PATTERN, { what: 'its client port', timeoutMs });
    await child.waitForLine(READY_PATTERN, { what: "'Server is ready'", timeoutMs });
    const bound = Number(listening[2]);
    return { url: `nats://${host}:${bound}`, port: bound, process: child, access: secured?.access };
  } catch (err) {
    await child.stop({ graceMs: 2000 });
    if (err instanceof ChildStartError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      throw new NatsServerMissingError(command, { cause: err });
    }
    throw new LauncherError(`nats-server did not start: ${(err as Error).message}`, { cause: err });
  }
}

/** A private folder with the server's configuration (users and permissions) and each role's credentials. */
function writeAccess(jobId: string): { dir: string; config: string; access: LocalNatsAccess } {
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'shardwise-nats-'));
  const credentials = makeNatsCredentials();
  const config = path.join(dir, 'nats-server.conf');
  fs.writeFileSync(config, natsAuthorization(jobId, credentials), { mode: 0o600 });
  const files = {} as Record<BusRole, string>;
  for (const role of BUS_ROLES) {
    files[role] = path.join(dir, `${role}.json`);
    writeNatsCredentials(files[role], credentials[role]);
  }
  return { dir, config, access: { credentials, files } };
}
