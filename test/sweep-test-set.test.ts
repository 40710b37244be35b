/**
 * The test-set option: `data.testSet` evaluates CIFAR-10's test_batch.bin after every epoch (here a small
 * generated one), which lets `valFraction: 0` through; the metrics name the set, and a sweep refuses a job
 * without a validation split, since its objective is always a validation metric.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { encodeCifar10Records, JobSpecError, parseJobSpec, readMetrics, type EpochRecord } from '../common';
import { parseSweepSpec, SweepSpecError } from '../sweep';
import { signalImages, writeSignalCifar } from './support/cluster-data';

const JOB = 'model: { architecture: small_cnn }\ntraining: { epochs: 2, batchSize: 20 }\noptimizer: { type: adam, learningRate: 0.003 }\n';

describe('test-set evaluation (data.testSet)', function () {
  this.timeout(120_000);

  it('allows valFraction 0 only with testSet', () => {
    assert.throws(() => parseJobSpec(`${JOB}data: { valFraction: 0 }`),
      (err) => err instanceof JobSpecError && /data\.valFraction: 0 holds out no images to evaluate on; allowed only with data\.testSet: true/.test(err.message));
    assert.equal(parseJobSpec(`${JOB}data: { valFraction: 0, testSet: true }`).data.testSet, true);
  });

  it('train --local reports test_batch.bin metrics every epoch, beside validation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'test-set-'));
    const data = join(dir, 'data');
    mkdirSync(data);
    writeSignalCifar(data, 100, 1);
    writeFileSync(join(data, 'test_batch.bin'), encodeCifar10Records(signalImages(30, 9)));
    writeFileSync(join(dir, 'job.yaml'), `${JOB}data: { valFraction: 0, testSet: true }\n`);
    const stderr = await new Promise<string>((done, fail) => execFile(resolve(__dirname, '..', 'bin', 'shardwise'),
      ['train', '--local', '--job', join(dir, 'job.yaml'), '--data', data, '--runs-dir', join(dir, 'runs'), '--backend', 'wasm'],
      (err, _out, errText) => (err ? fail(new Error(errText)) : done(errText))));
    assert.match(stderr, /100 training and 0 validation images, 30 test images \(test_batch\.bin, reported only\)/);
    assert.match(stderr, /epoch 2\/2 .*\| test loss \d+\.\d+ top-1 /);
    const run = join(dir, 'runs', readdirSync(join(dir, 'runs'))[0]);
    const epochs = readMetrics(run).filter((r): r is EpochRecord => r.type === 'epoch');
    assert.equal(epochs.length, 2);
    for (const e of epochs) {
      assert.ok(Number.isNaN(e.val.loss), 'no validation split');
      assert.ok(e.test !== undefined && Number.isFinite(e.test.loss) && e.test.top1 >= 0 && e.test.top1 <= 1);
    }
  });

  it('a sweep refuses a job without a validation split: its objective is always a validation metric', () => {
    assert.throws(() => parseSweepSpec(`name: s\njob: { ${JOB.trim().split('\n').join(', ')}, data: { valFraction: 0, testSet: true } }\n` +
      'parameters: { seed: [1] }\nobjective: { metric: val.top1 }\n'),
    (err) => err instanceof SweepSpecError && /data\.valFraction is 0, but the objective is always a validation metric/.test(err.message));
  });
});
