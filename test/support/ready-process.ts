import { spawn, type ChildProcess } from 'node:child_process';

/** How to start a server binary and recognise that it is ready. */
export interface ReadyProcessOptions {
  /** Executable on PATH, e.g. `nats-server`. */
  command: string;
  args: readonly string[];
  /** Matched against stdout+stderr; the process counts as ready at the first match. */
  readyPattern: RegExp;
  /** Shown when the executable is missing, e.g. `scripts/ensure-deb.sh nats-server:nats-server`. */
  installHint: string;
  /** Give up (and kill the process) when not ready by then. @default 15000 */
  startTimeoutMs?: number;
}

/** Kept from the end of the output, for error messages. */
const LOG_TAIL_CHARS = 4000;

/**
 * A real server binary run as a child process for an integration test: started, waited for until its
 * log says it is ready (no fixed sleeps), and stopped with SIGTERM, awaiting its exit.
 */
export class ReadyProcess {
  private output = '';
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    private readonly command: string,
  ) {
    const append = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString('utf8')).slice(-LOG_TAIL_CHARS);
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    // mocha --exit (or a crash) ends the test process without running `after` hooks; kill the child
    // then too, so no server outlives the run and holds its port.
    const killOnExit = (): void => {
      child.kill('SIGKILL');
    };
    process.once('exit', killOnExit);
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        process.off('exit', killOnExit);
        resolve();
      }),
    );
  }

  /** Spawns the process and resolves once `readyPattern` appears in its output. */
  static async start(options: ReadyProcessOptions): Promise<ReadyProcess> {
    const child = spawn(options.command, [...options.args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const proc = new ReadyProcess(child, options.command);
    const timeoutMs = options.startTimeoutMs ?? 15_000;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${options.command} not ready after ${timeoutMs} ms; output:\n${proc.output}`)),
          timeoutMs,
        );
        const done = (err?: Error): void => {
          clearTimeout(timer);
          child.stdout?.off('data', check);
          child.stderr?.off('data', check);
          if (err) reject(err);
          else resolve();
        };
        const check = (): void => {
          if (options.readyPattern.test(proc.output)) done();
        };
        child.stdout?.on('data', check);
        child.stderr?.on('data', check);
        child.once('error', (err: NodeJS.ErrnoException) =>
          done(
            err.code === 'ENOENT'
              ? new Error(`${options.command} is not installed; install it with: ${options.installHint}`)
              : err,
          ),
        );
        child.once('exit', (code, signal) =>
          done(new Error(`${options.command} exited (${signal ?? code}) before it was ready; output:\n${proc.output}`)),
        );
      });
    } catch (err) {
      await proc.stop();
      throw err;
    }
    return proc;
  }

  /** The last few KB of the process's output. */
  get log(): string {
    return this.output;
  }

  /** Whether the process is still running. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends SIGTERM and waits for the exit; SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  toString(): string {
    return `${this.command} (pid ${this.child.pid})`;
  }
}
