import { exportModel, type ModelParts, saveLayersModel } from '../models';
import { CurveThread } from './curve-thread';
import { createProgress, type Progress, type ProgressStream } from './progress';
import type { EpochRecord, MetricsRecord } from './records';
import { RunDirectory } from './run-directory';
import type { EpochEvent, TrainerEvent } from '../training';

/** What a {@link RunRecorder} needs to know about the run it records. */
export interface RunRecorderOptions {
  run: RunDirectory;
  parts: ModelParts;
  epochs: number;
  stepsPerEpoch: number;
  /** Save the self-contained model every N epochs (the last epoch always). */
  checkpointEveryEpochs: number;
  /** Where progress goes. @default process.stderr */
  stream?: ProgressStream;
  /** Receives warnings (missing fonts for the PNG curves). @default writes to the progress stream */
  warn?: (line: string) => void;
  /** Records of the run before a resume (already in `metrics.jsonl`), so the curves cover the whole run. */
  history?: readonly MetricsRecord[];
}

/**
 * The one adapter from trainer events to what a person looks at: `metrics.jsonl`, the progress display,
 * the curves (redrawn after every epoch, so an interrupted run still has them) and the self-contained model
 * checkpoint. Both the local trainer and the distributed coordinator feed it the same events.
 */
export class RunRecorder {
  private readonly progress: Progress;
  private readonly records: MetricsRecord[];
  private pending: Promise<void> = Promise.resolve();
  private failure: unknown = undefined;
  /** Draws the curves off this thread: the coordinator's event loop keeps serving workers meanwhile. */
  private readonly curves = new CurveThread();

  constructor(private readonly options: RunRecorderOptions) {
    this.records = [...(options.history ?? [])];
    this.progress = createProgress({ epochs: options.epochs, stepsPerEpoch: options.stepsPerEpoch, stream: options.stream });
    this.curves.start();
  }

  /** Records one event. File writes after an epoch run in order in the background; `close` awaits them. */
  onEvent(event: TrainerEvent): void {
    const record = toRecord(event);
    if (record.type === 'step') record.time = performance.timeOrigin + performance.now();
    this.options.run.appendMetrics(record);
    this.records.push(record);
    if (record.type === 'step') this.progress.onStep(record);
    if (record.type === 'epoch') {
      this.progress.onEpoch(record);
      this.enqueue(() => this.afterEpoch(record));
    }
  }

  /** Waits for pending checkpoint and curve writes, ends the progress display, rethrows a write failure. */
  async close(): Promise<void> {
    try {
      await this.pending;
    } finally {
      this.progress.stop();
      this.options.run.close();
      await this.curves.close();
    }
    if (this.failure !== undefined) throw this.failure;
  }

  private enqueue(task: () => Promise<void>): void {
    this.pending = this.pending.then(task).catch((err: unknown) => {
      this.failure ??= err;
    });
  }

  private async afterEpoch(record: EpochRecord): Promise<void> {
    const { run, parts, epochs, checkpointEveryEpochs } = this.options;
    const last = record.epoch === epochs - 1;
    if (last || (record.epoch + 1) % checkpointEveryEpochs === 0) {
      await saveLayersModel(exportModel(parts), run.checkpointDir());
    }
    const warn = this.options.warn ?? ((line: string) => (this.options.stream ?? process.stderr).write(`${line}\n`));
    const files = await this.curves.draw(run.dir, this.records);
    for (const line of files.warnings) warn(line);
  }
}

/** Maps a trainer event onto the record `metrics.jsonl` keeps. */
export function toRecord(event: TrainerEvent): MetricsRecord {
  switch (event.type) {
    case 'step':
      return {
        type: 'step',
        epoch: event.epoch,
        step: event.step,
        globalStep: event.globalStep,
        loss: event.loss,
        lr: event.lr,
        samplesPerSec: event.samplesPerSec,
      };
    case 'epoch':
      return epochRecord(event);
    case 'freeze':
    case 'unfreeze':
      return { type: event.type, epoch: event.epoch };
    case 'lr-change':
      return { type: 'lr-change', epoch: event.epoch, step: 0, lr: event.lr };
  }
}

function epochRecord(event: EpochEvent): EpochRecord {
  const { loss, top1, top5 } = event.train;
  const val = event.val
    ? { loss: event.val.loss, top1: event.val.top1, top5: event.val.top5, perClass: event.val.perClass.map((a) => a ?? NaN) }
    : { loss: NaN, top1: NaN, top5: NaN };
  const test = event.test ? { test: { loss: event.test.loss, top1: event.test.top1, top5: event.test.top5 } } : {};
  return { type: 'epoch', epoch: event.epoch, train: { loss, top1, top5 }, val, ...test, lr: event.lr, frozen: event.frozen, seconds: event.seconds };
}
