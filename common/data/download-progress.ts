import { SingleBar } from 'cli-progress';

/**
 * How download progress is shown. `auto` draws a bar when stderr is a terminal and otherwise prints a
 * line every ~10% (a bar redrawn with carriage returns turns CI logs into noise).
 */
export type ProgressMode = 'auto' | 'bar' | 'lines' | 'none';

/** Receives byte counts as a download streams. */
export interface ProgressReporter {
  /** `total` is undefined when the server sent no Content-Length. */
  start(total: number | undefined): void;
  update(received: number): void;
  stop(): void;
}

/** Without a known total, print a line every this many bytes. */
const UNKNOWN_TOTAL_STEP_BYTES = 16 * 1024 * 1024;
const MIB = 1024 * 1024;

function mib(bytes: number): string {
  return (bytes / MIB).toFixed(1);
}

/** Builds the reporter for `mode`; `log` receives the lines of the `lines` mode. */
export function createProgressReporter(
  mode: ProgressMode,
  label: string,
  log: (line: string) => void,
): ProgressReporter {
  const resolved = mode === 'auto' ? (process.stderr.isTTY ? 'bar' : 'lines') : mode;
  if (resolved === 'none') return { start() {}, update() {}, stop() {} };
  if (resolved === 'bar') return barReporter(label, log);
  return lineReporter(label, log);
}

function barReporter(label: string, log: (line: string) => void): ProgressReporter {
  let bar: SingleBar | undefined;
  // A bar needs a total; without Content-Length fall back to periodic lines.
  let fallback: ProgressReporter | undefined;
  return {
    start(total) {
      if (total === undefined) {
        fallback = lineReporter(label, log);
        fallback.start(total);
        return;
      }
      bar = new SingleBar({
        format: `${label} [{bar}] {percentage}% | {receivedMib}/{totalMib} MiB | ETA {eta_formatted}`,
        stream: process.stderr,
        hideCursor: true,
      });
      bar.start(total, 0, { receivedMib: '0.0', totalMib: mib(total) });
    },
    update(received) {
      if (fallback) fallback.update(received);
      else bar?.update(received, { receivedMib: mib(received) });
    },
    stop() {
      bar?.stop();
      fallback?.stop();
    },
  };
}

function lineReporter(label: string, log: (line: string) => void): ProgressReporter {
  let total: number | undefined;
  let nextMark = 0;
  return {
    start(t) {
      total = t;
      nextMark = total === undefined ? UNKNOWN_TOTAL_STEP_BYTES : 1;
      log(`${label}: 0% of ${total === undefined ? 'unknown size' : `${mib(total)} MiB`}`);
    },
    update(received) {
      if (total === undefined) {
        if (received >= nextMark) {
          log(`${label}: ${mib(received)} MiB`);
          while (nextMark <= received) nextMark += UNKNOWN_TOTAL_STEP_BYTES;
        }
        return;
      }
      const decile = Math.floor((received / total) * 10);
      if (decile >= nextMark) {
        log(`${label}: ${Math.min(decile * 10, 100)}% (${mib(received)}/${mib(total)} MiB)`);
        nextMark = decile + 1;
      }
    },
    stop() {},
  };
}
