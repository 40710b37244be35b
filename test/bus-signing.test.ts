import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { connect, type NatsConnection } from 'nats';
import { Registry } from 'prom-client';
import {
  type BusEvent,
  createWorkerMetrics,
  deriveBusKey,
  encodeEvent,
  EventBus,
  EventValidationError,
  EventVerifier,
  eventSubject,
  type NatsCredentials,
  signEvent,
  signatureMatches,
  UNVERIFIED_REASONS,
  type UnverifiedEventError,
  type UnverifiedReason,
  validateEvent,
  type WorkerMetrics,
} from '../common';
import { type LocalNats, NatsServerMissingError, startLocalNats } from '../launcher';
import { BusListener, ConfigSync, type WorkerConfig } from '../worker';
import { pollUntil } from './support/deadline';

const JOB = 'signed-job';
const TOKEN = Buffer.from(randomBytes(32).toString('base64url'));
const KEY = deriveBusKey(TOKEN, JOB);

function freeze(configVersion: number, jobId = JOB): BusEvent {
  return { type: 'freeze', paramGroup: 'head', jobId, configVersion, effectiveStep: 10 * configVersion };
}

function unfreeze(configVersion: number): BusEvent {
  return { type: 'unfreeze', paramGroup: 'backbone', jobId: JOB, configVersion, effectiveStep: 10 * configVersion };
}

/** Backbone frozen, head training: the test job's configuration before its first change. */
function startConfig(): WorkerConfig {
  return { version: 0, frozen: { backbone: true, head: false }, learningRates: { backbone: 0, head: 0.01 } };
}

async function unverifiedCounts(metrics: WorkerMetrics): Promise<Record<UnverifiedReason, number>> {
  const { values } = await metrics.busUnverifiedEvents.get();
  return Object.fromEntries(UNVERIFIED_REASONS.map((r) => [r, values.find((v) => v.labels.reason === r)?.value ?? 0])) as Record<UnverifiedReason, number>;
}

describe('bus event signing: the key, the signature and the verifier', () => {
  it('derives one key per job and token, never the token itself', () => {
    assert.equal(KEY.length, 32);
    assert.deepEqual(deriveBusKey(TOKEN, JOB), KEY);
    assert.notDeepEqual(deriveBusKey(TOKEN, 'another-job'), KEY);
    assert.notDeepEqual(deriveBusKey(Buffer.from('another-token-of-enough-length'), JOB), KEY);
    assert.equal(KEY.includes(TOKEN.subarray(0, 8)), false);
  });

  it('signs the content whatever its key order; any changed field breaks the signature', () => {
    const signed = signEvent(freeze(3), KEY);
    assert.ok(signatureMatches(signed, KEY));
    const reordered = { signature: signed.signature, effectiveStep: 30, configVersion: 3, paramGroup: 'head', jobId: JOB, type: 'freeze' };
    assert.ok(signatureMatches(reordered, KEY));
    assert.equal(signatureMatches({ ...signed, configVersion: 4 }, KEY), false);
    assert.equal(signatureMatches({ ...signed, paramGroup: 'backbone' }, KEY), false);
    assert.equal(signatureMatches(signed, deriveBusKey(TOKEN, 'another-job')), false);
    assert.equal(signatureMatches(freeze(3), KEY), false, 'an unsigned event');
  });

  it('verifies a field a newer coordinator added, though the schema drops it (tolerant reader)', () => {
    const extended = signEvent({ ...freeze(1), addedLater: { b: 2, a: [1, 2] } }, KEY);
    const seen: UnverifiedEventError[] = [];
    const verifier = new EventVerifier({ jobId: JOB, key: KEY, versionInForce: () => 0, onUnverified: (e) => seen.push(e) });
    const event = verifier.verify(JSON.parse(JSON.stringify(extended)));
    assert.equal(event?.type, 'freeze');
    assert.deepEqual(seen, []);
  });

  it('refuses a malformed signature with the field named, as any malformed event', () => {
    assert.throws(() => validateEvent({ ...freeze(1), signature: 'short' }, JOB),
      (err: unknown) => err instanceof EventValidationError && /signature: expected 43 base64url characters/.test(err.message));
  });

  it('logs each reason once, and takes a genuine late event without counting it', () => {
    let inForce = 2;
    const seen: Array<[UnverifiedReason, boolean]> = [];
    const verifier = new EventVerifier({ jobId: JOB, key: KEY, versionInForce: () => inForce, onUnverified: (e, first) => seen.push([e.reason, first]) });
    assert.equal(verifier.verify(freeze(3)), undefined);
    assert.equal(verifier.verify(freeze(4)), undefined);
    // v2 is in force (fetched over gRPC) and its event arrives only now: old news, not an attack.
    assert.equal(verifier.verify(signEvent(unfreeze(2), KEY))?.configVersion, 2);
    assert.equal(verifier.verify(signEvent(unfreeze(2), KEY)), undefined, 'the second copy is a replay');
    // A coordinator resumed from a checkpoint counts versions up again: its events are new.
    inForce = 1;
    assert.equal(verifier.verify(signEvent(unfreeze(2), KEY))?.configVersion, 2);
    assert.deepEqual(seen, [['unsigned', true], ['unsigned', false], ['stale', true]]);
  });
});

describe('bus event signing on a secured nats-server: a worker acts only on the coordinator\'s events', function () {
  this.timeout(60_000);
  let nats: LocalNats;
  const closing: Array<() => Promise<void>> = [];

  before(async function () {
    nats = await startLocalNats({ secureJob: JOB }).catch((err: unknown) => {
      if (err instanceof NatsServerMissingError) this.skip();
      throw err;
    });
  });
  after(async () => {
    for (const close of closing.reverse()) await close();
    await nats?.process.stop();
  });

  async function publisher(name: string, signingKey?: Buffer): Promise<EventBus> {
    const bus = await EventBus.connect({ servers: nats.url, jobId: JOB, name, credentials: nats.access!.credentials.coordinator, signingKey });
    closing.push(() => bus.close());
    return bus;
  }

  /** A plain nats.js client with the coordinator's password: it can put any bytes on the job's subject. */
  async function rawPublisher(credentials: NatsCredentials): Promise<NatsConnection> {
    const nc = await connect({ servers: nats.url, user: credentials.user, pass: credentials.password });
    closing.push(() => nc.close());
    return nc;
  }

  function worker(name: string, joinToken: Buffer | undefined) {
    const sync = new ConfigSync();
    sync.reset(startConfig());
    const metrics = createWorkerMetrics(new Registry());
    const taken: BusEvent[] = [];
    const lines: string[] = [];
    const listener = new BusListener({
      url: nats.url, jobId: JOB, name, credentials: nats.access!.credentials.worker, joinToken, metrics,
      versionInForce: () => sync.version,
      onEvent: (event) => {
        taken.push(event);
        sync.onEvent(event);
      },
      onReconnect: () => undefined,
      log: (line) => lines.push(line),
    });
    closing.push(() => listener.close());
    return { sync, metrics, taken, lines, listener };
  }

  const noFetch = async (): Promise<WorkerConfig> => assert.fail('the configuration was not complete on the bus');

  it('drops a forged freeze at the next version, an unsigned one and another job\'s; applies the genuine one; drops its replay', async () => {
    const w = worker('worker-1', TOKEN);
    await pollUntil(() => (w.listener.connected ? true : undefined), { timeoutMs: 10_000, intervalMs: 20, what: 'the worker to subscribe' });
    const coordinator = await publisher('coordinator', KEY);
    await coordinator.publish(unfreeze(1));
    await pollUntil(() => (w.taken.length === 1 ? true : undefined), { timeoutMs: 10_000, intervalMs: 20, what: 'the genuine unfreeze' });

    // The coordinator's NATS password leaked, the join token did not: freeze the head at the version the
    // genuine event announced and at the next one. Unverified, the forgery would replace the genuine v1.
    const forger = await publisher('forger', deriveBusKey(Buffer.from('a-token-from-some-other-job'), JOB));
    await forger.publish(freeze(1));
    await forger.publish(freeze(2));
    const raw = await rawPublisher(nats.access!.credentials.coordinator);
    raw.publish(eventSubject(JOB), encodeEvent(freeze(2)));
    raw.publish(eventSubject(JOB), encodeEvent(signEvent(freeze(2, 'another-job'), deriveBusKey(TOKEN, 'another-job'))));
    await raw.flush();
    const want = { unsigned: 1, 'bad-signature': 2, 'other-job': 1, stale: 0 };
    await pollUntil(async () => (isDeepStrictEqual(await unverifiedCounts(w.metrics), want) ? true : undefined), { timeoutMs: 10_000, intervalMs: 20, what: `the unverified counts ${JSON.stringify(want)}` });
    assert.deepEqual(w.taken.map((e) => [e.type, e.configVersion]), [['unfreeze', 1]]);

    // The fast path still works: v1 comes from the bus, as the coordinator said it, not as forged.
    assert.equal(await w.sync.ensure(1, noFetch), 'bus');
    assert.deepEqual(w.sync.config?.frozen, { backbone: false, head: false });
    // v2 was only ever forged: the worker fetches it.
    const fetched: WorkerConfig = { version: 2, frozen: { backbone: false, head: false }, learningRates: { backbone: 0.001, head: 0.001 } };
    assert.equal(await w.sync.ensure(2, async () => fetched), 'grpc');
    assert.deepEqual(w.sync.config?.frozen, { backbone: false, head: false });

    // Someone recorded the genuine v1 and plays it back once v2 is in force.
    const replayer = await publisher('replayer');
    await replayer.publish(w.taken[0]);
    await pollUntil(async () => ((await unverifiedCounts(w.metrics)).stale === 1 ? true : undefined),
      { timeoutMs: 10_000, intervalMs: 20, what: 'the replay to be counted as stale' });
    assert.equal(w.taken.length, 1, 'the replay reached the configuration');
    assert.equal(w.sync.version, 2);

    const logged = w.lines.filter((l) => /shardwise_worker_bus_unverified_events_total/.test(l));
    assert.equal(logged.length, 4, `one line per reason:\n${logged.join('\n')}`);
    assert.ok(logged.some((l) => /dropped a 'freeze' event \(config v1\).*signature is not the job's.*reason="bad-signature"/.test(l)), logged.join('\n'));
    assert.ok(logged.some((l) => /it is for job 'another-job', not 'signed-job'.*reason="other-job"/.test(l)), logged.join('\n'));
    for (const line of w.lines) assert.ok(!line.includes(TOKEN.toString()) && !line.includes(KEY.toString('base64url')), line);
  });

  it('--insecure (no join token): takes unsigned events, warns once, counts each as unsigned', async () => {
    const w = worker('worker-insecure', undefined);
    await pollUntil(() => (w.listener.connected ? true : undefined), { timeoutMs: 10_000, intervalMs: 20, what: 'the worker to subscribe' });
    const coordinator = await publisher('insecure-coordinator');
    await coordinator.publish(unfreeze(1));
    await coordinator.publish(freeze(2));
    await pollUntil(() => (w.taken.length === 2 ? true : undefined), { timeoutMs: 10_000, intervalMs: 20, what: 'both events' });
    assert.equal(await w.sync.ensure(2, noFetch), 'bus');
    assert.deepEqual(w.sync.config?.frozen, { backbone: false, head: true });
    assert.equal((await unverifiedCounts(w.metrics)).unsigned, 2);
    const warnings = w.lines.filter((l) => /no join token \(--insecure\)/.test(l));
    assert.equal(warnings.length, 1, w.lines.join('\n'));
    assert.match(warnings[0], /^event bus: took a 'unfreeze' event \(config v1\) .*any client allowed to publish/);
  });
});
