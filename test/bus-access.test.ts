import assert from 'node:assert/strict';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BusEvent, BusEventType, EventBus, EventBusConnectError, type EventBusError, type NatsCredentials, readNatsCredentials } from '../common';
import { type LocalNats, NatsServerMissingError, startLocalNats } from '../launcher';
import { pollUntil } from './support/deadline';

const JOB = 'access-test';

function scale(desiredWorkers: number): BusEvent {
  return { type: BusEventType.Scale, jobId: JOB, configVersion: 0, effectiveStep: 0, desiredWorkers };
}

describe('event bus access: only the coordinator may publish control events (real nats-server)', function () {
  this.timeout(60_000);
  let nats: LocalNats;
  const buses: EventBus[] = [];

  before(async function () {
    nats = await startLocalNats({ secureJob: JOB }).catch((err: unknown) => {
      if (err instanceof NatsServerMissingError) this.skip();
      throw err;
    });
  });
  after(async () => {
    await Promise.all(buses.map((b) => b.close()));
    await nats?.process.stop();
  });

  async function connect(name: string, credentials?: NatsCredentials, onError?: (e: EventBusError) => void): Promise<EventBus> {
    const bus = await EventBus.connect({ servers: nats.url, jobId: JOB, name, credentials, connectTimeoutMs: 5000, onError });
    buses.push(bus);
    return bus;
  }

  it('writes each role its own credentials file, readable by its owner only', () => {
    const access = nats.access!;
    for (const role of ['coordinator', 'worker', 'launcher'] as const) {
      assert.deepEqual(readNatsCredentials(access.files[role]), access.credentials[role]);
      assert.equal(statSync(access.files[role]).mode & 0o777, 0o600);
    }
  });

  it('refuses a client without credentials, and one with a wrong password', async () => {
    await assert.rejects(connect('anonymous'), (err: unknown) => err instanceof EventBusConnectError && /Authorization Violation/i.test(String((err as Error).cause)));
    const wrong = { user: 'coordinator', password: 'not-the-password-at-all' };
    await assert.rejects(connect('impostor', wrong), (err: unknown) => err instanceof EventBusConnectError);
  });

  it("drops a worker's forged scale event at the server and tells the forger; the coordinator's event arrives", async () => {
    const { credentials } = nats.access!;
    const seen: number[] = [];
    const launcher = await connect('launcher', credentials.launcher);
    await launcher.subscribe((event) => {
      if (event.type === BusEventType.Scale) seen.push(event.desiredWorkers);
    });
    const refusals: string[] = [];
    const forger = await connect('forger', credentials.worker, (e) => refusals.push(e.message));
    // publish() waits for the server's answer to a ping sent after the message, so the server has dealt
    // with the forged event before the coordinator's goes out.
    await forger.publish(scale(0));
    const coordinator = await connect('coordinator', credentials.coordinator);
    await coordinator.publish(scale(3));
    await pollUntil(() => (seen.length > 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 20, what: "the coordinator's scale event" });
    assert.deepEqual(seen, [3]);
    await pollUntil(() => (refusals.length > 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 20, what: 'the server to refuse the forged publish' });
    assert.deepEqual(refusals, ['NATS reported an error: PERMISSIONS_VIOLATION: this user may not publish to shardwise.access-test.events']);
  });

  it("refuses a worker's subscription to another job's events", async () => {
    const refusals: string[] = [];
    const other = await EventBus.connect({ servers: nats.url, jobId: 'another-job', name: 'snoop', credentials: nats.access!.credentials.worker, onError: (e) => refusals.push(e.message) });
    buses.push(other);
    await other.subscribe(() => undefined).catch((err: Error) => refusals.push(err.message));
    await pollUntil(() => (refusals.length > 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 20, what: 'the server to refuse the subscription' });
    assert.match(refusals.join('\n'), /PERMISSIONS_VIOLATION: this user may not subscribe to shardwise\.another-job\.events/);
  });

  it('refuses credentials files that are unreadable or malformed, naming the file', () => {
    assert.throws(() => readNatsCredentials('/no/such/creds.json'), /natsCredentials: cannot read \/no\/such\/creds\.json: ENOENT/);
    const dir = mkdtempSync(join(tmpdir(), 'shardwise-creds-'));
    const file = (name: string, text: string): string => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    assert.throws(() => readNatsCredentials(file('not-json', 'user: worker')), /natsCredentials: .*not-json: expected JSON \{"user": \.\.\., "password": \.\.\.\}/);
    assert.throws(() => readNatsCredentials(file('short', '{"user": "worker", "password": "short"}')), /short: expected .*wrong: password/);
  });
});
