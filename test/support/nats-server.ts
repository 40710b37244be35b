import { getFreePort } from './free-port';
import { ReadyProcess } from './ready-process';

/** The Debian package providing the binary; `make test` installs it (as root) with scripts/ensure-deb.sh. */
const INSTALL_HINT = 'scripts/ensure-deb.sh nats-server:nats-server (as root), or apt-get install nats-server';
const HOST = '127.0.0.1';
/** Attempts with a fresh port when another process took the free port before nats-server bound it. */
const PORT_ATTEMPTS = 3;

/**
 * A real `nats-server` on 127.0.0.1 for integration tests, as nats.js tests its client. `stop()` and
 * `restart()` (same port, so clients reconnect to the URL they know) inject a bus outage on purpose.
 */
export class NatsServer {
  private proc: ReadyProcess | undefined;

  private constructor(
    /** The TCP port, the same across restarts. */
    readonly port: number,
    proc: ReadyProcess,
  ) {
    this.proc = proc;
  }

  /** Starts a server on `port`, or on a free port chosen by the OS; resolves when it accepts clients. */
  static async start(options: { port?: number } = {}): Promise<NatsServer> {
    for (let attempt = 1; ; attempt++) {
      const port = options.port ?? (await getFreePort(HOST));
      try {
        return new NatsServer(port, await launch(port));
      } catch (err) {
        const taken = err instanceof Error && /address already in use/i.test(err.message);
        if (!taken || options.port !== undefined || attempt >= PORT_ATTEMPTS) throw err;
      }
    }
  }

  /** Client URL, e.g. `nats://127.0.0.1:4222`. */
  get url(): string {
    return `nats://${HOST}:${this.port}`;
  }

  /** Whether the server process is running. */
  get running(): boolean {
    return this.proc?.running ?? false;
  }

  /** The server's recent log, for failure messages. */
  get log(): string {
    return this.proc?.log ?? '';
  }

  /** SIGTERM, then waits for the process to exit (clients see their connection drop). */
  async stop(): Promise<void> {
    await this.proc?.stop();
  }

  /** Stops the server if running and starts a new one on the same port; resolves when it is ready. */
  async restart(): Promise<void> {
    await this.stop();
    this.proc = await launch(this.port);
  }
}

function launch(port: number): Promise<ReadyProcess> {
  return ReadyProcess.start({
    command: 'nats-server',
    // -a/-p bind to loopback only; no config file, no monitoring port, no JetStream: core NATS as deployed.
    args: ['-a', HOST, '-p', String(port)],
    readyPattern: /Server is ready/,
    installHint: INSTALL_HINT,
  });
}
