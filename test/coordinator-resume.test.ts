import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  buildModel,
  disposeModelParts,
  initBackend,
  type JobSpec,
  loadTrainVal,
  namedVariables,
  parseJobSpec,
  readMetrics,
  runLocalTraining,
} from '../common';
import { listCheckpoints, ResumeError, type RunningCoordinator, startCoordinator } from '../coordinator';
import { StepKind } from '../proto';
import { FakeWorker, writeTinyCifar } from './coordinator-fake-worker';
import { withDeadline } from './support/deadline';

describe('coordinator: checkpoints and resume mid-epoch', function () {
  this.timeout(120_000);
  let dataDir: string;
  let runsDir: string;

  function jobSpec(lr = 0.002): JobSpec {
    return parseJobSpec(`
name: resume
seed: 4
data: { dir: ${JSON.stringify(dataDir)}, limit: 64, valFraction: 0.15 }
model: { architecture: small_cnn, head: seed, headUnits: 8 }
training: { epochs: 2, batchSize: 16, microBatchSize: 8, evalBatchSize: 16 }
optimizer: { type: adam, learningRate: ${lr} }
freeze: { backboneEpochs: 1 }
output: { runsDir: ${JSON.stringify(runsDir)} }
distributed: { leaseMs: 60000, stepDeadlineMs: 60000, checkpointEverySteps: 2 }
`);
  }

  const quiet = { log: () => undefined, progressStream: fs.createWriteStream('/dev/null'), drainGraceMs: 200, stopGraceMs: 5000 };

  before(async () => {
    await initBackend({ prefer: 'wasm', log: () => undefined });
    dataDir = writeTinyCifar(64, 9);
    runsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-coordinator-resume-'));
  });
  after(() => {
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(runsDir, { recursive: true, force: true });
  });

  it('a restarted coordinator resumes from its newest checkpoint, redoes the lost steps, and ends with the local weights', async () => {
    const spec = jobSpec();
    let first: RunningCoordinator | undefined;
    let second: RunningCoordinator | undefined;
    const workers: FakeWorker[] = [];
    let weights: Map<string, Float32Array>;
    let runDir: string;
    try {
      first = await startCoordinator({ spec, ...quiet });
      runDir = first.runDir;
      const w = await new FakeWorker(first.grpcAddress).join('w1');
      workers.push(w);
      for (let step = 0; step < 3; step++) {
        const a = await w.pullUntil(StepKind.TRAIN);
        assert.equal(a.globalStep, step);
        await w.train(a);
      }
      // Step 3 is handed out but never pushed: the coordinator is stopped while it is in progress.
      assert.equal((await w.pullUntil(StepKind.TRAIN)).globalStep, 3);
      first.stop();
      const outcome = await withDeadline(first.done, 10_000, 'the first coordinator to stop');
      assert.deepEqual([outcome.status, outcome.globalStep], ['interrupted', 3]);
      await first.close();
      const checkpoints = (await listCheckpoints(path.join(runDir, 'checkpoints'))).map((p) => path.basename(p));
      assert.deepEqual(checkpoints, ['step-0000000003', 'step-0000000002'], 'the shutdown checkpoint and the periodic one');
      // As if the coordinator had crashed before the shutdown checkpoint: only the periodic one is left.
      fs.rmSync(path.join(runDir, 'checkpoints', 'step-0000000003'), { recursive: true });

      second = await startCoordinator({ spec, runDir, ...quiet });
      assert.equal(second.resumedAtStep, 2);
      const w2 = await new FakeWorker(second.grpcAddress).join('w1');
      workers.push(w2);
      const config = await w2.getConfig();
      assert.deepEqual([config.configVersion, config.globalStep, config.groups.find((g) => g.name === 'backbone')?.frozen], [1, 2, true],
        'mid-epoch 0: the freeze decided at its start is still in force');
      const done = await withDeadline(w2.runUntilStop(), 60_000, 'the resumed job');
      assert.deepEqual(done, { train: 6, eval: 2 }, 'steps 2 and 3 redone, then epoch 1');
      await w2.getWeights();
      weights = w2.weights();
      await w2.leave();
      assert.equal((await withDeadline(second.done, 5000, 'the resumed coordinator to finish')).status, 'finished');
    } finally {
      workers.forEach((w) => w.close());
      await first?.close();
      await second?.close();
    }

    const data = await loadTrainVal(spec.data, spec.seed);
    const local = await buildModel(spec.model, spec.seed);
    try {
      await runLocalTraining(spec, { train: data.train, val: data.val, parts: local });
      const named = namedVariables(local);
      for (const v of [...named.backbone, ...named.head]) {
        const want = v.read().dataSync() as Float32Array;
        const got = weights.get(v.originalName) as Float32Array;
        let diff = 0;
        let scale = 1e-12;
        want.forEach((x, i) => {
          diff = Math.max(diff, Math.abs(got[i] - x));
          scale = Math.max(scale, Math.abs(x));
        });
        assert.ok(diff / scale <= 1e-4, `${v.originalName}: relative error ${diff / scale}`);
      }
    } finally {
      disposeModelParts(local);
    }

    const records = readMetrics(runDir);
    const reports = records.filter((r) => r.type === 'epoch-report');
    assert.equal(reports.length, 2);
    for (const r of reports) {
      if (r.type === 'epoch-report') assert.ok(r.exactlyOnce && r.counted === r.expected, `across the restart: ${JSON.stringify(r)}`);
    }
    assert.deepEqual(records.filter((r) => r.type === 'epoch').map((r) => r.type === 'epoch' && r.epoch), [0, 1]);
    const steps = records.flatMap((r) => (r.type === 'step' ? [r.globalStep] : []));
    assert.deepEqual(steps, steps.map((_, i) => i), 'each step recorded once: the redone step 2 replaced its first record');
    const freezes = records.flatMap((r) => (r.type === 'freeze' || r.type === 'unfreeze' ? [`${r.type}@${r.epoch}`] : []));
    assert.deepEqual(freezes, ['freeze@0', 'unfreeze@1']);
    assert.ok(fs.existsSync(path.join(runDir, 'loss-per-epoch.svg')), 'curves drawn from the whole metrics file');
  });

  it('refuses to resume a run directory under a job spec that trains differently', async () => {
    const spec = jobSpec();
    const c = await startCoordinator({ spec, ...quiet });
    c.stop();
    await c.done;
    await c.close();
    await assert.rejects(startCoordinator({ spec: jobSpec(0.5), runDir: c.runDir, ...quiet }), (err: unknown) =>
      err instanceof ResumeError && /was written by a job spec that trains differently/.test(err.message));
  });
});
