import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  buildModel,
  disposeModelParts,
  type EpochEvent,
  initBackend,
  type JobSpec,
  loadTrainVal,
  type MetricsRecord,
  namedVariables,
  parseJobSpec,
  readMetrics,
  runLocalTraining,
  type TrainerEvent,
} from '../common';
import { type RunningCoordinator, startCoordinator } from '../coordinator';
import { StepKind } from '../proto';
import { FakeWorker, writeTinyCifar } from './coordinator-fake-worker';
import { withDeadline } from './support/deadline';

/** Largest |a - b| over the largest |b|, per variable: the equivalence bar of the contract. */
function relativeError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 1e-12;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

function jobSpec(dataDir: string, runsDir: string, extra: string): JobSpec {
  return parseJobSpec(`
name: parity
seed: 3
data: { dir: ${JSON.stringify(dataDir)}, limit: 64, valFraction: 0.15 }
model: { architecture: small_cnn, head: seed, headUnits: 8, dropout: 0.3 }
optimizer: { type: sgd, learningRate: 0.05, momentum: 0.9 }
output: { runsDir: ${JSON.stringify(runsDir)} }
${extra}
`);
}

interface DistributedRun {
  weights: Map<string, Float32Array>;
  records: MetricsRecord[];
  runDir: string;
  /** tf.memory().numTensors when each training assignment arrived. */
  tensorCounts: { epoch: number; step: number; count: number }[];
  globalSteps: number;
}

/** Runs the job on a real coordinator with honest raw-client workers; returns the final weights. */
async function runDistributed(spec: JobSpec, ids: string[]): Promise<DistributedRun> {
  const baseline = tf.memory().numTensors;
  let coordinator: RunningCoordinator | undefined;
  const workers: FakeWorker[] = [];
  const tensorCounts: DistributedRun['tensorCounts'] = [];
  let weights: Map<string, Float32Array>;
  let globalSteps: number;
  try {
    coordinator = await startCoordinator({ spec, log: () => undefined, progressStream: fs.createWriteStream('/dev/null') });
    for (const id of ids) workers.push(await new FakeWorker(coordinator.grpcAddress).join(id));
    const loop = async (w: FakeWorker): Promise<void> => {
      for (;;) {
        const { assignment: a } = await w.pull(2000);
        if (a.kind === StepKind.STOP) return;
        if (a.kind === StepKind.TRAIN) {
          tensorCounts.push({ epoch: a.epoch, step: a.globalStep, count: tf.memory().numTensors });
          await w.train(a);
        } else if (a.kind === StepKind.EVAL) {
          await w.submitEval(w.evaluate(a));
        }
      }
    };
    await withDeadline(Promise.all(workers.map(loop)), 90_000, 'every worker to be told STOP');
    // The job is over; a replica fetches the coordinator's final weights once more to compare them.
    await workers[0].getWeights();
    weights = workers[0].weights();
    // The coordinator finishes once every worker that heard STOP has left.
    await Promise.all(workers.map((w) => w.leave()));
    const outcome = await withDeadline(coordinator.done, 5000, 'the coordinator to finish');
    assert.equal(outcome.status, 'finished');
    globalSteps = outcome.globalStep;
  } finally {
    workers.forEach((w) => w.close());
    await coordinator?.close();
  }
  assert.equal(tf.memory().numTensors, baseline, 'the coordinator and its workers freed every tensor');
  return { weights, records: readMetrics(coordinator.runDir), runDir: coordinator.runDir, tensorCounts, globalSteps };
}

/** The reference: runLocalTraining on the same spec; returns its weights and events. */
async function runLocal(spec: JobSpec): Promise<{ weights: Map<string, Float32Array>; epochs: EpochEvent[] }> {
  const data = await loadTrainVal(spec.data, spec.seed);
  const parts = await buildModel(spec.model, spec.seed);
  const events: TrainerEvent[] = [];
  try {
    await runLocalTraining(spec, { train: data.train, val: data.val, parts, onEvent: (e) => events.push(e) });
    const named = namedVariables(parts);
    const weights = new Map([...named.backbone, ...named.head].map((v) => [v.originalName, Float32Array.from(v.read().dataSync() as Float32Array)]));
    return { weights, epochs: events.filter((e): e is EpochEvent => e.type === 'epoch') };
  } finally {
    disposeModelParts(parts);
  }
}

function assertClose(distributed: Map<string, Float32Array>, local: Map<string, Float32Array>, tolerance: number): void {
  assert.deepEqual([...distributed.keys()].sort(), [...local.keys()].sort());
  for (const [name, want] of local) {
    const err = relativeError(distributed.get(name) as Float32Array, want);
    assert.ok(err <= tolerance, `${name}: relative error ${err} > ${tolerance}`);
  }
}

describe('coordinator: distributed training equals the local trainer', function () {
  this.timeout(120_000);
  let dataDir: string;
  let runsDir: string;

  before(async () => {
    await initBackend({ prefer: 'wasm', log: () => undefined });
    dataDir = writeTinyCifar(64, 11);
    runsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-coordinator-runs-'));
  });
  after(() => {
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(runsDir, { recursive: true, force: true });
  });

  it('a raw-client worker running the real computeShare reaches the local weights (freeze, unfreeze, BatchNorm, dropout, augmentation)', async () => {
    const spec = jobSpec(dataDir, runsDir, `
training: { epochs: 2, batchSize: 16, microBatchSize: 4, evalBatchSize: 8 }
freeze: { backboneEpochs: 1 }
distributed: { leaseMs: 60000, stepDeadlineMs: 60000, hashEverySteps: 3 }`);
    const run = await runDistributed(spec, ['w1']);
    assert.equal(run.globalSteps, 8, 'two epochs of 4 steps (16, 16, 16, 6 samples)');
    const local = await runLocal(spec);
    assertClose(run.weights, local.weights, 1e-4);

    // Flat across steps: once the momentum slots exist (after the first update of the unfrozen epoch),
    // the count at every later training assignment is the same.
    const lastEpoch = run.tensorCounts.filter((c) => c.epoch === 1 && c.step >= 5).map((c) => c.count);
    assert.equal(lastEpoch.length, 3);
    assert.equal(new Set(lastEpoch).size, 1, `tensor counts at steps 5..7: ${lastEpoch.join(', ')}`);

    const epochs = run.records.filter((r) => r.type === 'epoch');
    assert.equal(epochs.length, 2);
    epochs.forEach((r, k) => {
      if (r.type !== 'epoch') return;
      const want = local.epochs[k].val?.loss as number;
      assert.ok(Math.abs(r.val.loss - want) <= 1e-4 * Math.abs(want), `epoch ${k} val loss ${r.val.loss} vs local ${want}`);
      assert.equal(r.val.top1, local.epochs[k].val?.top1);
      assert.equal(r.frozen, k === 0);
    });
    assert.deepEqual(run.records.filter((r) => r.type === 'freeze' || r.type === 'unfreeze').map((r) => r.type), ['freeze', 'unfreeze']);
    const reports = run.records.filter((r) => r.type === 'epoch-report');
    assert.equal(reports.length, 2);
    for (const r of reports) if (r.type === 'epoch-report') assert.ok(r.exactlyOnce && r.counted === r.expected, JSON.stringify(r));
    const hashes = run.records.filter((r) => r.type === 'replica-hash');
    assert.deepEqual(hashes.map((r) => r.type === 'replica-hash' && r.globalStep), [0, 3, 4, 6], 'every 3 steps and at epoch starts');
    for (const r of hashes) if (r.type === 'replica-hash') assert.ok(r.agree && r.workers.w1 === r.coordinator, JSON.stringify(r));
    assert.ok(fs.existsSync(path.join(run.runDir, 'checkpoint', 'model.json')), 'the final self-contained model');
    assert.ok(fs.existsSync(path.join(run.runDir, 'job.json')));
  });

  it('two workers with shares of several micro-batches agree with it up to float32 summation order', async () => {
    const spec = jobSpec(dataDir, runsDir, `
training: { epochs: 1, batchSize: 16, microBatchSize: 4, evalBatchSize: 8 }
distributed: { minWorkers: 2, leaseMs: 60000, stepDeadlineMs: 60000, hashEverySteps: 1 }`);
    const run = await runDistributed(spec, ['w1', 'w2']);
    const local = await runLocal(spec);
    // Each worker sums its two micro-batches before the coordinator adds the shares, so additions are
    // associated differently than in the local loop; BatchNorm over 4-sample micro-batches amplifies the
    // last-bit differences over the steps (one worker is bit-identical: see the test above).
    assertClose(run.weights, local.weights, 1e-3);
    const hashes = run.records.filter((r) => r.type === 'replica-hash');
    assert.equal(hashes.length, 4);
    for (const r of hashes) if (r.type === 'replica-hash') assert.ok(r.agree && Object.keys(r.workers).length >= 1, JSON.stringify(r));
  });
});
