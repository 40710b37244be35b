import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type BusEvent, EventBus, GrpcStatus, initBackend, parseJobSpec, RpcError, unaryCall } from '../common';
import { type RunningCoordinator, startCoordinator } from '../coordinator';
import type { ScaleResponse } from '../proto';
import { FakeWorker, writeTinyCifar } from './coordinator-fake-worker';
import { withDeadline } from './support/deadline';
import { NatsServer } from './support/nats-server';

/** Values of a metric family on /metrics, by their label set (`{}` when unlabelled). */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) out.set(m[1] ?? '{}', Number(m[2]));
  return out;
}

describe('coordinator: job events on NATS, scale requests and Prometheus metrics', function () {
  this.timeout(60_000);
  let nats: NatsServer;
  let dataDir: string;
  let runsDir: string;

  before(async () => {
    await initBackend({ prefer: 'wasm', log: () => undefined });
    nats = await NatsServer.start();
    dataDir = writeTinyCifar(48, 3);
    runsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-coordinator-events-'));
  });
  after(async () => {
    await nats?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(runsDir, { recursive: true, force: true });
  });

  it('announces freeze, unfreeze, learning-rate, scale and lifecycle events and exports the job in metrics', async () => {
    const spec = parseJobSpec(`
name: events
data: { dir: ${JSON.stringify(dataDir)}, limit: 48, valFraction: 0.2 }
model: { architecture: small_cnn }
training: { epochs: 2, batchSize: 16, microBatchSize: 8, evalBatchSize: 16 }
optimizer: { learningRate: 0.01 }
freeze: { backboneEpochs: 1, unfreezeLearningRate: 0.001 }
output: { runsDir: ${JSON.stringify(runsDir)} }
distributed: { leaseMs: 60000, stepDeadlineMs: 60000, maxWorkers: 4 }
`);
    const listener = await EventBus.connect({ servers: nats.url, jobId: 'events', name: 'test-listener' });
    const events: BusEvent[] = [];
    let sawStopped!: () => void;
    const stopped = new Promise<void>((resolve) => (sawStopped = resolve));
    const subscription = await listener.subscribe((e) => {
      events.push(e);
      if (e.type === 'job-state' && e.state === 'stopped') sawStopped();
    });
    let coordinator: RunningCoordinator | undefined;
    let worker: FakeWorker | undefined;
    let metricsText = '';
    try {
      coordinator = await startCoordinator({ spec, natsUrl: nats.url, log: () => undefined, progressStream: fs.createWriteStream('/dev/null') });
      worker = await new FakeWorker(coordinator.grpcAddress).join('w1');
      const scale = (n: number) => unaryCall<ScaleResponse>('Scale', { deadlineMs: 5000 }, (md, o, cb) =>
        (worker as FakeWorker).client.scale({ desiredWorkers: n }, md, o, cb));
      assert.deepEqual(await scale(3), { desiredWorkers: 3, activeWorkers: 1 });
      await assert.rejects(scale(9), (err: unknown) =>
        err instanceof RpcError && err.code === GrpcStatus.INVALID_ARGUMENT && /desired_workers: expected an integer in \[minWorkers, maxWorkers\] = \[1, 4\], got 9/.test(err.details));
      assert.deepEqual(await withDeadline(worker.runUntilStop(), 30_000, 'the job'), { train: 6, eval: 2 });
      metricsText = await (await fetch(coordinator.metricsUrl)).text();
      await worker.leave();
      assert.equal((await withDeadline(coordinator.done, 5000, 'the coordinator to finish')).status, 'finished');
    } finally {
      worker?.close();
      await coordinator?.close();
    }
    // close() waited for the server to confirm every event; the listener may still be receiving the last.
    await withDeadline(stopped, 5000, 'the stopped event');
    await subscription.stop();
    await listener.close();

    const seen = events.map((e) => {
      const { jobId, ...rest } = e;
      assert.equal(jobId, 'events');
      return rest;
    });
    assert.deepEqual(seen.filter((e) => e.type !== 'job-state'), [
      { type: 'freeze', paramGroup: 'backbone', configVersion: 1, effectiveStep: 0 },
      { type: 'scale', desiredWorkers: 3, configVersion: 1, effectiveStep: 0 },
      { type: 'unfreeze', paramGroup: 'backbone', configVersion: 2, effectiveStep: 3 },
      { type: 'lr-change', lrByGroup: { backbone: 0.001, head: 0.01 }, reason: 'unfreeze', configVersion: 3, effectiveStep: 3 },
    ]);
    assert.deepEqual(seen.filter((e) => e.type === 'job-state').map((e) => e.type === 'job-state' && e.state), ['running', 'stopped']);

    const one = (name: string, labels = '{}'): number => {
      const v = samples(metricsText, name).get(labels);
      assert.ok(v !== undefined, `${name}${labels} is exported`);
      return v;
    };
    assert.equal(one('shardwise_steps_total'), 6);
    assert.equal(one('shardwise_samples_total'), 2 * 38);
    assert.equal(one('shardwise_config_version'), 3);
    assert.equal(one('shardwise_desired_workers'), 3);
    assert.equal(one('shardwise_active_workers'), 1);
    assert.equal(one('shardwise_waiting_for_workers'), 0);
    assert.equal(one('shardwise_worker_joins_total'), 1);
    assert.equal(one('shardwise_param_group_frozen', '{group="backbone"}'), 0);
    assert.equal(one('shardwise_learning_rate', '{group="backbone"}'), 0.001);
    assert.equal(one('shardwise_epoch_progress_ratio'), 1);
    assert.ok(one('shardwise_samples_per_second') > 0);
    assert.ok(one('shardwise_worker_step_seconds', '{worker="w1"}') > 0);
    assert.ok(one('shardwise_sent_bytes_total') > 38 * 3072 * 2, 'samples and weights went out');
    assert.ok(one('shardwise_received_bytes_total') > 0);
    assert.equal(one('shardwise_step_duration_seconds_count'), 6);
    assert.equal(one('shardwise_step_phase_duration_seconds_count', '{phase="compute"}'), 6);
    for (const split of ['train', 'validation']) assert.ok(Number.isFinite(one('shardwise_loss', `{split="${split}"}`)));
    assert.ok(one('shardwise_top5_accuracy_ratio', '{split="validation"}') >= 0);
  });
});
