import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { ConfigError } from '../common/errors';
import {
  createProgress, formatDuration, formatLr, type EpochRecord, type StepRecord,
} from '../common/reporting';

/** A stream that keeps what is written; `isTTY` makes it pass for a terminal. */
class CaptureStream extends Writable {
  readonly chunks: string[] = [];
  constructor(readonly isTTY: boolean, readonly columns = 160) {
    super();
  }
  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: () => void): void {
    this.chunks.push(chunk.toString());
    done();
  }
  /** Everything written, escape sequences removed. */
  text(): string {
    // eslint-disable-next-line no-control-regex
    return this.chunks.join('').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
  }
  lines(): string[] {
    return this.text().split('\n').filter((l) => l !== '');
  }
}

function step(epoch: number, s: number, loss: number): StepRecord {
  return { type: 'step', epoch, step: s, globalStep: epoch * 10 + s, loss, lr: { backbone: 1e-4, head: 1e-3 }, samplesPerSec: 412.4 };
}

const EPOCH_1: EpochRecord = {
  type: 'epoch', epoch: 0, frozen: true, seconds: 41.25, lr: { backbone: 0, head: 0.001 },
  train: { loss: 1.23456, top1: 0.551, top5: 0.95 },
  val: { loss: 1.3, top1: 0.52, top5: 0.931 },
};
const EPOCH_LINE_1 = 'epoch 1/2 done in 41.3 s: train loss 1.2346 top-1 55.1% | val loss 1.3000 top-1 52.0% top-5 93.1%'
  + ' | lr backbone 0.00e0 head 1.00e-3 | backbone frozen';

function timeouts(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

describe('progress', () => {
  describe('log lines (not a terminal)', () => {
    it('writes a step line at most once per interval, then one summary line per epoch', () => {
      const stream = new CaptureStream(false);
      let now = 0;
      const progress = createProgress({ epochs: 2, stepsPerEpoch: 10, stream, logIntervalMs: 5_000, now: () => now });
      // One step per second: lines at 5 s and 10 s after the start, never closer together.
      for (let s = 0; s < 10; s++) {
        now = (s + 1) * 1_000;
        progress.onStep(step(0, s, s < 5 ? 2 : 1));
      }
      progress.onEpoch(EPOCH_1);
      progress.stop();
      assert.deepEqual(stream.lines(), [
        // Step 5 of 10 after 4 timed steps of 1 s: 5 left, ETA 5 s; loss is the mean so far.
        'epoch 1/2 step 5/10 avg loss 2.0000 | lr backbone 1.00e-4 head 1.00e-3 | 412 img/s | ETA 0:05',
        'epoch 1/2 step 10/10 avg loss 1.5000 | lr backbone 1.00e-4 head 1.00e-3 | 412 img/s | ETA 0:00',
        EPOCH_LINE_1,
      ]);
    });

    it('restarts the mean and the ETA each epoch, and says when the backbone trains', () => {
      const stream = new CaptureStream(false);
      let now = 0;
      const progress = createProgress({ epochs: 2, stepsPerEpoch: 4, stream, logIntervalMs: 0, now: () => now });
      progress.onStep(step(0, 0, 9));
      progress.onEpoch(EPOCH_1);
      now = 100_000;
      progress.onStep(step(1, 0, 3));
      now = 102_000;
      progress.onStep(step(1, 1, 1));
      progress.onEpoch({ ...EPOCH_1, epoch: 1, frozen: false });
      const lines = stream.lines();
      assert.equal(lines[2], 'epoch 2/2 step 1/4 avg loss 3.0000 | lr backbone 1.00e-4 head 1.00e-3 | 412 img/s | ETA ?');
      assert.equal(lines[3], 'epoch 2/2 step 2/4 avg loss 2.0000 | lr backbone 1.00e-4 head 1.00e-3 | 412 img/s | ETA 0:04');
      assert.match(lines[4], /^epoch 2\/2 done in .* \| backbone training$/);
    });

    it('stays quiet between intervals', () => {
      const stream = new CaptureStream(false);
      const progress = createProgress({ epochs: 1, stepsPerEpoch: 100, stream, logIntervalMs: 10_000, now: () => 0 });
      for (let s = 0; s < 100; s++) progress.onStep(step(0, s, 1));
      assert.deepEqual(stream.chunks, []);
    });
  });

  describe('bar (terminal)', () => {
    it('draws a bar with step, loss, throughput and ETA, replaced by the epoch summary', () => {
      const stream = new CaptureStream(true);
      const before = timeouts();
      let now = 0;
      const progress = createProgress({ epochs: 2, stepsPerEpoch: 4, stream, now: () => now });
      for (let s = 0; s < 4; s++) {
        now = s * 2_000;
        progress.onStep(step(0, s, 1.5));
      }
      assert.equal(timeouts(), before + 1, 'the bar redraws on a timer while it runs');
      progress.onEpoch(EPOCH_1);
      assert.equal(timeouts(), before, 'the epoch summary stops the bar and its timer');
      const text = stream.text();
      assert.match(text, /epoch 1\/2 \[=+-*\] 1\/4 \| avg loss 1\.5000 \| 412 img\/s \| ETA \?/);
      assert.match(text, /epoch 1\/2 \[=+\] 4\/4 \| avg loss 1\.5000 \| 412 img\/s \| ETA 0:00/);
      assert.ok(text.endsWith(`${EPOCH_LINE_1}\n`), text);
    });

    it('stop() ends a bar in progress, and is safe to call twice', () => {
      const stream = new CaptureStream(true);
      const before = timeouts();
      const progress = createProgress({ epochs: 1, stepsPerEpoch: 10, stream });
      progress.onStep(step(0, 0, 1));
      progress.onStep(step(0, 1, 1));
      assert.equal(timeouts(), before + 1);
      progress.stop();
      progress.stop();
      assert.equal(timeouts(), before);
      assert.match(stream.text(), /2\/10/);
    });

    it('follows isTTY unless told otherwise', () => {
      const stream = new CaptureStream(true);
      const progress = createProgress({ epochs: 1, stepsPerEpoch: 2, stream, tty: false, logIntervalMs: 0 });
      progress.onStep(step(0, 0, 1));
      progress.stop();
      assert.deepEqual(stream.lines().map((l) => l.slice(0, 18)), ['epoch 1/1 step 1/2']);
    });
  });

  it('rejects counts below 1, naming the field', () => {
    assert.throws(() => createProgress({ epochs: 0, stepsPerEpoch: 5 }), (err: unknown) =>
      err instanceof ConfigError && err.field === 'progress.epochs' && /found 0/.test(err.message));
    assert.throws(() => createProgress({ epochs: 1, stepsPerEpoch: 2.5 }), (err: unknown) =>
      err instanceof ConfigError && err.field === 'progress.stepsPerEpoch');
  });

  it('formats durations and learning rates', () => {
    assert.equal(formatDuration(0), '0:00');
    assert.equal(formatDuration(65.4), '1:05');
    assert.equal(formatDuration(3_725), '1:02:05');
    assert.equal(formatDuration(Number.NaN), '?');
    assert.equal(formatLr(0.001), '1.00e-3');
    assert.equal(formatLr(2.5), '2.50e0');
  });
});
