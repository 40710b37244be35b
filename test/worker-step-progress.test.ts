import assert from 'node:assert/strict';
import { StepProgress } from '../worker';

/** A share of `samples` images, loss 2 per image, 4 ms compute. */
const share = (globalStep: number, samples = 8, epoch = 0) => ({ globalStep, epoch, sampleCount: samples, lossSum: 2 * samples, computeSeconds: 0.004 });

describe('StepProgress: a worker\'s progress line without --log-steps', () => {
  it('says the first share at once, then sums the shares of each interval into one line', () => {
    let now = 1000;
    const progress = new StepProgress(10_000, () => now);
    assert.equal(progress.add(share(0)), 'step 0 (epoch 0): 1 share, 8 samples, mean loss 2.0000, 4.0 ms compute per share');
    for (let step = 1; step <= 4; step++) {
      now += 2000;
      assert.equal(progress.add(share(step, 4)), undefined, `no line ${now - 1000} ms after the first`);
    }
    now += 2000; // 10 s after the last line
    assert.equal(progress.add(share(5, 4, 1)), 'steps 1-5 (epoch 1): 5 shares, 20 samples, mean loss 2.0000, 4.0 ms compute per share');
    now += 10_000;
    assert.equal(progress.add(share(3)), 'step 3 (epoch 0): 1 share, 8 samples, mean loss 2.0000, 4.0 ms compute per share',
      'a redone earlier step starts the next line\'s range afresh');
  });

  it('weighs the mean loss by samples', () => {
    let now = 0;
    const progress = new StepProgress(10, () => now);
    progress.add(share(0));
    progress.add({ globalStep: 1, epoch: 0, sampleCount: 1, lossSum: 5, computeSeconds: 0.001 });
    now = 10;
    assert.match(progress.add({ globalStep: 2, epoch: 0, sampleCount: 3, lossSum: 3, computeSeconds: 0.003 }) ?? '',
      /^steps 1-2 \(epoch 0\): 2 shares, 4 samples, mean loss 2\.0000, 2\.0 ms compute per share$/);
    now = 20;
    assert.equal(progress.add({ globalStep: 3, epoch: 0, sampleCount: 1, lossSum: 1, computeSeconds: 0.001 }),
      'step 3 (epoch 0): 1 share, 1 sample, mean loss 1.0000, 1.0 ms compute per share');
  });
});
