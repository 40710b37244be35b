import assert from 'node:assert/strict';
import { EventBus, type BusEvent } from '../common/bus';
import { ConfigState } from '../proto';
import { BusListener, ConfigSync, ConfigSyncError, type WorkerConfig, configFromProto } from '../worker';
import { pollUntil } from './support/deadline';
import { NatsServer } from './support/nats-server';

const JOB = 'sync-job';

function config(version: number, backboneFrozen: boolean): WorkerConfig {
  return { version, frozen: { backbone: backboneFrozen, head: false }, learningRates: { backbone: 0, head: 0.01 } };
}

function event(configVersion: number, type: 'freeze' | 'unfreeze' | 'lr-change'): BusEvent {
  const base = { jobId: JOB, configVersion, effectiveStep: 10 * configVersion };
  if (type === 'lr-change') return { type, lrByGroup: { backbone: 0.001 * configVersion, head: 0.01 * configVersion }, reason: 'plateau', ...base };
  return { type, paramGroup: 'backbone', ...base };
}

/** A GetConfig stand-in that records its calls: it is the boundary ConfigSync is given, not our code. */
function fetcher(answer: WorkerConfig): { fetch: () => Promise<WorkerConfig>; calls: number } {
  const f = { calls: 0, fetch: async () => (f.calls++, answer) };
  return f;
}

describe('worker config sync: the bus when it has every version, GetConfig when it does not', () => {
  it('reads a GetConfig answer: freeze state and rates per group, unknown groups ignored', () => {
    const c = configFromProto(ConfigState.fromPartial({
      configVersion: 4,
      groups: [{ name: 'backbone', frozen: true, learningRate: 0 }, { name: 'head', frozen: false, learningRate: 0.05 }, { name: 'extra', frozen: true }],
    }));
    assert.deepEqual(c, { version: 4, frozen: { backbone: true, head: false }, learningRates: { backbone: 0, head: 0.05 } });
  });

  it('uses the received events when they cover every version up to the assignment\'s', async () => {
    const lines: string[] = [];
    const sync = new ConfigSync((l) => lines.push(l));
    sync.reset(config(3, true));
    sync.onEvent(event(4, 'unfreeze'));
    sync.onEvent(event(5, 'lr-change'));
    const grpc = fetcher(config(5, false));
    assert.equal(await sync.ensure(5, grpc.fetch), 'bus');
    assert.equal(grpc.calls, 0);
    assert.deepEqual(sync.config, { version: 5, frozen: { backbone: false, head: false }, learningRates: { backbone: 0.005, head: 0.05 } });
    assert.equal(await sync.ensure(5, grpc.fetch), 'current');
    assert.deepEqual(lines, []);
  });

  it('stops at the assignment\'s version even when later events have arrived', async () => {
    const sync = new ConfigSync();
    sync.reset(config(0, false));
    sync.onEvent(event(1, 'freeze'));
    sync.onEvent(event(2, 'unfreeze'));
    assert.equal(await sync.ensure(1, fetcher(config(9, false)).fetch), 'bus');
    assert.equal(sync.version, 1);
    assert.equal(sync.config?.frozen.backbone, true);
  });

  it('calls GetConfig when an event in between is missing, and says so', async () => {
    const lines: string[] = [];
    const sync = new ConfigSync((l) => lines.push(l));
    sync.reset(config(3, true));
    sync.onEvent(event(5, 'lr-change')); // v4 (the unfreeze) was lost
    const grpc = fetcher(config(5, false));
    assert.equal(await sync.ensure(5, grpc.fetch), 'grpc');
    assert.equal(grpc.calls, 1);
    assert.equal(sync.config?.frozen.backbone, false, 'the unfreeze the bus lost comes from GetConfig');
    assert.deepEqual(lines, ['config v5 missed on the bus; fetched over gRPC']);
  });

  it('ignores stale events and events that are not configuration changes', async () => {
    const sync = new ConfigSync();
    sync.reset(config(3, false));
    sync.onEvent(event(3, 'freeze'));
    sync.onEvent({ type: 'scale', desiredWorkers: 3, jobId: JOB, configVersion: 4, effectiveStep: 0 });
    const grpc = fetcher(config(4, false));
    assert.equal(await sync.ensure(4, grpc.fetch), 'grpc');
    assert.equal(sync.config?.frozen.backbone, false);
  });

  it('takes a configuration pushed on the session stream when it is newer, so the order needs no call', async () => {
    const lines: string[] = [];
    const sync = new ConfigSync((line) => lines.push(line));
    sync.reset(config(3, true));
    assert.equal(sync.push(config(2, false)), false, 'an older pushed config is ignored');
    assert.equal(sync.push(config(4, false)), true);
    const grpc = fetcher(config(9, true));
    assert.equal(await sync.ensure(4, grpc.fetch), 'current');
    assert.equal(sync.config?.frozen.backbone, false);
    assert.deepEqual(lines, ['config v4 pushed on the session stream']);
  });

  it('fails loudly when GetConfig answers with an older version than the assignment named', async () => {
    const sync = new ConfigSync();
    sync.reset(config(1, false));
    await assert.rejects(sync.ensure(3, fetcher(config(2, false)).fetch),
      (e: unknown) => e instanceof ConfigSyncError && e.expectedVersion === 3 && e.actualVersion === 2);
  });

  it('after a re-registration takes the coordinator\'s version even if it went back (resumed from a checkpoint)', async () => {
    const sync = new ConfigSync();
    sync.reset(config(7, false));
    sync.onEvent(event(8, 'freeze'));
    sync.reset(config(2, true));
    assert.equal(sync.version, 2);
    sync.onEvent(event(3, 'unfreeze'));
    assert.equal(await sync.ensure(3, fetcher(config(0, false)).fetch), 'bus');
    assert.equal(sync.config?.frozen.backbone, false);
  });
});

describe('worker bus listener with a real nats-server', function () {
  this.timeout(30_000);
  let nats: NatsServer;
  let publisher: EventBus;

  before(async function () {
    try {
      nats = await NatsServer.start();
    } catch (err) {
      if (/ENOENT|not found/i.test(String(err))) this.skip();
      throw err;
    }
    publisher = await EventBus.connect({ servers: nats.url, jobId: JOB, name: 'test-coordinator' });
  });
  after(async () => {
    await publisher?.close();
    await nats?.stop();
  });

  it('delivers published configuration events, so the worker needs no GetConfig', async () => {
    const sync = new ConfigSync();
    sync.reset(config(0, true));
    const listener = new BusListener({ url: nats.url, jobId: JOB, name: 'worker-a', versionInForce: () => sync.version, onEvent: (e) => sync.onEvent(e), onReconnect: () => undefined, log: () => undefined });
    try {
      await pollUntil(() => (listener.connected ? true : undefined), { timeoutMs: 10_000, intervalMs: 20, what: 'the listener to connect' });
      await publisher.publish(event(1, 'unfreeze'));
      await publisher.publish(event(2, 'lr-change'));
      const notYet = async (): Promise<WorkerConfig> => {
        throw new Error('not on the bus yet');
      };
      const source = await pollUntil(() => sync.ensure(2, notYet).catch(() => undefined),
        { timeoutMs: 10_000, intervalMs: 20, what: 'both events to arrive' });
      assert.equal(source, 'bus');
      assert.equal(sync.config?.frozen.backbone, false);
      assert.equal(sync.config?.learningRates.head, 0.02);
    } finally {
      await listener.close();
    }
    assert.equal(listener.connected, false);
  });

  it('keeps working without a bus: an unreachable URL only logs, and close() returns', async () => {
    const lines: string[] = [];
    const listener = new BusListener({ url: 'nats://127.0.0.1:1', jobId: JOB, name: 'worker-b', versionInForce: () => -1, onEvent: () => undefined, onReconnect: () => undefined,
      log: (l) => lines.push(l), retry: { initialDelayMs: 10, maxDelayMs: 50 } });
    await pollUntil(() => (lines.length > 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 20, what: 'the unreachable-bus log line' });
    await listener.close();
    assert.equal(listener.connected, false);
    assert.match(lines[0], /event bus nats:\/\/127\.0\.0\.1:1 unreachable .*configuration changes come over gRPC/);
    assert.equal(lines.length, 1, 'logged once, not on every retry');
  });
});
