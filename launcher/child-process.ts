import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { ChildExitedError, ChildStartError, ChildTimeoutError } from './errors';

/** Which output stream a line came from. */
export type OutputStream = 'stdout' | 'stderr';

/** How a child ended. `error` is set when it never started (e.g. ENOENT). */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** How to start one child process and where its output goes. */
export interface ChildSpec {
  /** Name in logs, prefixes and errors, e.g. `coordinator`, `worker-2`. */
  name: string;
  /** Executable (a path, or a name looked up on PATH). */
  command: string;
  args: readonly string[];
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
  /** @default process.cwd() */
  cwd?: string;
  /**
   * `pipe`: stderr is read line by line like stdout (to `onLine` and the history); `inherit`: it goes
   * straight to this process's stderr, so a child drawing progress bars on a terminal keeps them intact.
   * @default 'pipe'
   */
  stderr?: 'pipe' | 'inherit';
  /** Receives every complete output line, without its newline, in the order it arrived. */
  onLine?: (line: string, stream: OutputStream) => void;
  /**
   * Start the child in its own process group, so a Ctrl-C on the terminal reaches only the launcher,
   * which then stops its children in order instead of all of them dying at once. @default true
   */
  detached?: boolean;
  /** Lines kept for `waitForLine` and error messages. @default 2000 */
  historyLines?: number;
}

/** Options of {@link ManagedChild.waitForLine}. */
export interface WaitForLineOptions {
  /** What is awaited, in words, for the error message (e.g. 'the coordinator ready line'). */
  what?: string;
  /** Reject with ChildTimeoutError after this long; 0 waits as long as the child runs. @default 0 */
  timeoutMs?: number;
  /** Look only at lines printed after the call, not the history. @default false */
  onlyNew?: boolean;
}

/** Options of {@link ManagedChild.stop}. */
export interface StopOptions {
  /** @default 'SIGTERM' */
  signal?: NodeJS.Signals;
  /** Send SIGKILL when the child has not exited this long after `signal`. @default 10000 */
  graceMs?: number;
}

interface LineWaiter {
  pattern: RegExp;
  what: string;
  resolve: (match: RegExpExecArray) => void;
  reject: (err: Error) => void;
}

/** Lines of output quoted in error messages. */
const TAIL_LINES = 30;

/**
 * Children still running. A launcher that dies without its orderly stop (an uncaught error, mocha --exit)
 * takes them with it, so no worker keeps retrying a coordinator that is gone and no server holds its port.
 * One process 'exit' listener serves them all: one per child would pass Node's listener limit at 11 workers.
 */
const LIVE_CHILDREN = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of LIVE_CHILDREN) child.kill('SIGKILL');
  });
}

/**
 * One child process the launcher (or a test) owns: its output split into lines and kept for a while,
 * waits for a given line (a ready line) that fail fast when the child dies first, and a stop that
 * escalates from SIGTERM to SIGKILL after a grace period and resolves only once the child has exited.
 */
export class ManagedChild {
  /** Resolves once the child has exited (never rejects). */
  readonly exited: Promise<ExitStatus>;
  readonly name: string;
  private readonly child: ChildProcess;
  private readonly history: string[] = [];
  private readonly historyLimit: number;
  private readonly waiters = new Set<LineWaiter>();
  private status: ExitStatus | undefined;

  private constructor(private readonly spec: ChildSpec) {
    this.name = spec.name;
    this.historyLimit = spec.historyLines ?? 2000;
    this.child = spawn(spec.command, [...spec.args], {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      stdio: ['ignore', 'pipe', spec.stderr === 'inherit' ? 'inherit' : 'pipe'],
      detached: spec.detached ?? true,
    });
    this.readLines(this.child.stdout, 'stdout');
    this.readLines(this.child.stderr, 'stderr');
    LIVE_CHILDREN.add(this.child);
    installExitHook();
    this.exited = new Promise<ExitStatus>((resolve) => {
      const finish = (status: ExitStatus): void => {
        if (this.status) return;
        this.status = status;
        LIVE_CHILDREN.delete(this.child);
        this.failWaiters();
        resolve(status);
      };
      this.child.once('error', (error) => finish({ code: null, signal: null, error }));
      // 'close' (not 'exit') so every line the child wrote has been read before waiters are failed.
      this.child.once('close', (code, signal) => finish({ code, signal }));
    });
  }

  /** Starts a child. Errors starting it (a missing executable) surface through `exited` and the waits. */
  static spawn(spec: ChildSpec): ManagedChild {
    return new ManagedChild(spec);
  }

  /** The operating system's process id (undefined when it never started). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Whether the child is still running. */
  get running(): boolean {
    return this.status === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** How it ended, once it has. */
  get exitStatus(): ExitStatus | undefined {
    return this.status;
  }

  /** The lines kept so far (stdout and stderr interleaved as they arrived). */
  lines(): readonly string[] {
    return this.history;
  }

  /** The last lines, joined, for error messages. */
  tail(lines = TAIL_LINES): string {
    return this.history.slice(-lines).join('\n');
  }

  /**
   * Resolves with the match of the first line matching `pattern` (already printed, unless `onlyNew`, or
   * still to come). Rejects with ChildExitedError (or ChildStartError) when the child ends first, and
   * with ChildTimeoutError after `timeoutMs`. No polling: every new line is checked as it arrives.
   */
  waitForLine(pattern: RegExp, options: WaitForLineOptions = {}): Promise<RegExpExecArray> {
    const what = options.what ?? `a line matching ${String(pattern)}`;
    if (!options.onlyNew) {
      for (const line of this.history) {
        const match = pattern.exec(line);
        if (match) return Promise.resolve(match);
      }
    }
    if (this.status) return Promise.reject(this.endedError(what, this.status));
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: LineWaiter = {
        pattern,
        what,
        resolve: (match) => {
          clearTimeout(timer);
          resolve(match);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      if (options.timeoutMs) {
        timer = setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new ChildTimeoutError(this.name, what, options.timeoutMs!, this.tail()));
        }, options.timeoutMs);
      }
      this.waiters.add(waiter);
    });
  }

  /** Sends `signal` if the child runs; returns whether it was sent. */
  signal(signal: NodeJS.Signals): boolean {
    return this.running && this.child.kill(signal);
  }

  /**
   * Sends `signal` (SIGTERM: a shardwise process drains, checkpoints or shuts down cleanly), then SIGKILL
   * if it is still running after `graceMs`; resolves with the exit status once it has exited.
   */
  async stop(options: StopOptions = {}): Promise<ExitStatus> {
    if (this.running) {
      this.child.kill(options.signal ?? 'SIGTERM');
      const timer = setTimeout(() => this.signal('SIGKILL'), options.graceMs ?? 10_000);
      try {
        return await this.exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return this.exited;
  }

  toString(): string {
    return `${this.name} (pid ${this.pid ?? 'none'})`;
  }

  private readLines(stream: NodeJS.ReadableStream | null, name: OutputStream): void {
    if (!stream) return;
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const part of parts) this.onLine(part.replace(/\r$/, ''), name);
    });
    stream.on('end', () => {
      if (partial !== '') this.onLine(partial.replace(/\r$/, ''), name);
      partial = '';
    });
  }

  private onLine(line: string, stream: OutputStream): void {
    this.history.push(line);
    if (this.history.length > this.historyLimit) this.history.splice(0, this.history.length - this.historyLimit);
    this.spec.onLine?.(line, stream);
    for (const waiter of [...this.waiters]) {
      const match = waiter.pattern.exec(line);
      if (match) {
        this.waiters.delete(waiter);
        waiter.resolve(match);
      }
    }
  }

  private failWaiters(): void {
    for (const waiter of this.waiters) waiter.reject(this.endedError(waiter.what, this.status!));
    this.waiters.clear();
  }

  private endedError(what: string, status: ExitStatus): Error {
    if (status.error) {
      const code = (status.error as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? `'${this.spec.command}' was not found` : status.error.message;
      return new ChildStartError(this.name, this.spec.command, `${this.name} could not start: ${why}`, { cause: status.error });
    }
    return new ChildExitedError(this.name, what, status.code, status.signal, this.tail());
  }
}

/**
 * The shell convention for a process's status: its exit code, or 128 + the signal number when a signal
 * ended it, or 1 when it never started.
 */
export function exitCodeOf(status: ExitStatus): number {
  if (status.code !== null) return status.code;
  if (status.signal !== null) return 128 + (osConstants.signals[status.signal] ?? 0);
  return 1;
}
