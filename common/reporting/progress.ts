/**
 * What a person watching a training run sees: on a terminal, a bar per epoch redrawn in place; in a
 * log (CI, `kubectl logs`, a file), a plain line at most every few seconds, since redraws would flood
 * it. Either way, one line per finished epoch stays behind as the run's readable history.
 */
import { SingleBar } from 'cli-progress';
import { ConfigError } from '../errors';
import type { EpochRecord, StepRecord } from './records';

/** A stream progress can write to; `isTTY` decides between bar and log lines. */
export type ProgressStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

/** How progress is shown. */
export interface ProgressOptions {
  /** Epochs in the run, shown as `epoch i/N`. */
  epochs: number;
  /** Optimiser steps in one epoch, the length of the bar. */
  stepsPerEpoch: number;
  /** Where progress goes. @default process.stderr */
  stream?: ProgressStream;
  /** Draw a bar (true) or write log lines (false). @default stream.isTTY === true */
  tty?: boolean;
  /** In log mode, the least time between two step lines. @default 10000 */
  logIntervalMs?: number;
  /** Clock in milliseconds, for the ETA and the log interval. @default Date.now */
  now?: () => number;
}

/** Receives the trainer's records (through the lead's adapter) and shows them. */
export interface Progress {
  /** An optimiser step finished. */
  onStep(record: StepRecord): void;
  /** An epoch finished (after validation): ends its bar and writes its summary line. */
  onEpoch(record: EpochRecord): void;
  /** Ends any bar in progress. Call it in a `finally`: a running bar keeps a redraw timer alive. */
  stop(): void;
}

/** Fills defaults and checks ranges; throws `ConfigError` naming the field. */
export function resolveProgressOptions(options: ProgressOptions): Required<ProgressOptions> {
  for (const field of ['epochs', 'stepsPerEpoch'] as const) {
    const value = options[field];
    if (!Number.isInteger(value) || value < 1) throw new ConfigError(`progress.${field}`, `expected an integer >= 1, found ${value}`);
  }
  const logIntervalMs = options.logIntervalMs ?? 10_000;
  if (!(logIntervalMs >= 0)) throw new ConfigError('progress.logIntervalMs', `expected a number >= 0, found ${logIntervalMs}`);
  const stream = options.stream ?? process.stderr;
  return {
    epochs: options.epochs,
    stepsPerEpoch: options.stepsPerEpoch,
    stream,
    tty: options.tty ?? stream.isTTY === true,
    logIntervalMs,
    now: options.now ?? Date.now,
  };
}

/** Creates the display: a cli-progress bar on a terminal, throttled log lines elsewhere. */
export function createProgress(options: ProgressOptions): Progress {
  return new EpochProgress(resolveProgressOptions(options));
}

/** `0.001` -> `1.00e-3`: learning rates span decades, so mantissa and exponent both matter. */
export function formatLr(lr: number): string {
  return Number.isFinite(lr) ? lr.toExponential(2).replace('e+', 'e') : String(lr);
}

/** Seconds as `m:ss` or `h:mm:ss`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(sec).padStart(2, '0')}`;
}

const pct = (fraction: number): string => `${(100 * fraction).toFixed(1)}%`;
const fmtLoss = (loss: number): string => loss.toFixed(4);
const fmtLrs = (lr: Record<string, number>): string =>
  Object.entries(lr).map(([group, value]) => `${group} ${formatLr(value)}`).join(' ');

/** The summary line of a finished epoch, shown in both modes. */
export function formatEpochLine(record: EpochRecord, epochs: number): string {
  const { train, val } = record;
  return `epoch ${record.epoch + 1}/${epochs} done in ${record.seconds.toFixed(1)} s:`
    + ` train loss ${fmtLoss(train.loss)} top-1 ${pct(train.top1)}`
    + ` | val loss ${fmtLoss(val.loss)} top-1 ${pct(val.top1)} top-5 ${pct(val.top5)}`
    + (record.test ? ` | test loss ${fmtLoss(record.test.loss)} top-1 ${pct(record.test.top1)} top-5 ${pct(record.test.top5)}` : '')
    + ` | lr ${fmtLrs(record.lr)} | backbone ${record.frozen ? 'frozen' : 'training'}`;
}

// Per-epoch state for the running loss mean and the ETA.
interface EpochState {
  epoch: number;
  firstStep: number;
  firstStepAtMs: number;
  lossSum: number;
  lossCount: number;
}

class EpochProgress implements Progress {
  private current?: EpochState;
  private bar?: SingleBar;
  private lastLineAtMs: number;

  constructor(private readonly options: Required<ProgressOptions>) {
    this.lastLineAtMs = options.now();
  }

  onStep(record: StepRecord): void {
    const now = this.options.now();
    if (this.current?.epoch !== record.epoch) {
      this.endBar();
      this.current = { epoch: record.epoch, firstStep: record.step, firstStepAtMs: now, lossSum: 0, lossCount: 0 };
    }
    const state = this.current;
    // The mean over the epoch so far: a single step's loss jumps too much to read at a glance.
    if (Number.isFinite(record.loss)) {
      state.lossSum += record.loss;
      state.lossCount++;
    }
    const done = record.step + 1;
    const total = Math.max(this.options.stepsPerEpoch, done);
    const stepsTimed = record.step - state.firstStep;
    const eta = stepsTimed > 0 ? ((now - state.firstStepAtMs) / 1000 / stepsTimed) * (total - done) : NaN;
    const fields = {
      epochText: `${record.epoch + 1}/${this.options.epochs}`,
      loss: state.lossCount > 0 ? fmtLoss(state.lossSum / state.lossCount) : 'NaN',
      sps: Number.isFinite(record.samplesPerSec) ? String(Math.round(record.samplesPerSec)) : '?',
      lr: fmtLrs(record.lr),
      etaText: formatDuration(eta),
    };
    if (this.options.tty) {
      this.showBar(done, total, fields);
    } else if (now - this.lastLineAtMs >= this.options.logIntervalMs) {
      this.writeLine(`epoch ${fields.epochText} step ${done}/${total} avg loss ${fields.loss}`
        + ` | lr ${fields.lr} | ${fields.sps} img/s | ETA ${fields.etaText}`, now);
    }
  }

  onEpoch(record: EpochRecord): void {
    this.endBar();
    this.current = undefined;
    this.writeLine(formatEpochLine(record, this.options.epochs), this.options.now());
  }

  stop(): void {
    this.endBar();
  }

  private showBar(done: number, total: number, fields: Record<string, string>): void {
    if (!this.bar) {
      this.bar = new SingleBar({
        stream: this.options.stream,
        format: 'epoch {epochText} [{bar}] {value}/{total} | avg loss {loss} | {sps} img/s | ETA {etaText}',
        barsize: 30,
        // The summary line replaces the bar, so the scrollback holds one line per epoch.
        clearOnComplete: true,
        hideCursor: false,
      });
      this.bar.start(total, done, fields);
      return;
    }
    if (total !== this.bar.getTotal()) this.bar.setTotal(total);
    this.bar.update(done, fields);
  }

  private endBar(): void {
    this.bar?.stop();
    this.bar = undefined;
  }

  private writeLine(line: string, now: number): void {
    this.options.stream.write(`${line}\n`);
    this.lastLineAtMs = now;
  }
}
