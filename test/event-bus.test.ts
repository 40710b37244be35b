import assert from 'node:assert/strict';
import { connect, type NatsConnection } from 'nats';
import {
  BusEventType,
  compileEventBusOptions,
  encodeEvent,
  EventBus,
  EventBusConnectError,
  EventHandlerError,
  EventPublishError,
  EventValidationError,
  eventSubject,
  parseEvent,
  PublishFailure,
  type BusEvent,
  type BusStatusInfo,
  type EventBusError,
  type EventBusOptions,
} from '../common/bus';
import { ConfigError } from '../common/errors';
import { withDeadline } from './support/deadline';
import { getFreePort } from './support/free-port';
import { NatsServer } from './support/nats-server';

const JOB = 'job-7';
const WAIT_MS = 10_000;

/** One event of each type, all valid for JOB. */
function sampleEvents(): BusEvent[] {
  const base = { jobId: JOB, effectiveStep: 120 };
  return [
    { type: 'freeze', paramGroup: 'backbone', configVersion: 1, ...base },
    { type: 'lr-change', lrByGroup: { backbone: 0.001, head: 0.01 }, reason: 'schedule', configVersion: 2, ...base },
    { type: 'unfreeze', paramGroup: 'backbone', configVersion: 3, ...base },
    { type: 'scale', desiredWorkers: 4, configVersion: 4, ...base },
    { type: 'job-state', state: 'running', configVersion: 5, ...base },
  ];
}

function lrChange(configVersion: number): BusEvent {
  return {
    type: BusEventType.LrChange,
    jobId: JOB,
    configVersion,
    effectiveStep: configVersion * 10,
    lrByGroup: { backbone: 0.1 / configVersion, head: 1 / configVersion },
    reason: 'plateau',
  };
}

/** Collects what a subscriber receives and lets a test wait for the n-th event. */
class Collector {
  readonly events: BusEvent[] = [];
  private waiters: Array<{ count: number; resolve: () => void }> = [];

  readonly handler = (event: BusEvent): void => {
    this.events.push(event);
    this.waiters = this.waiters.filter((w) => (this.events.length >= w.count ? (w.resolve(), false) : true));
  };

  waitForCount(count: number): Promise<void> {
    if (this.events.length >= count) return Promise.resolve();
    const reached = new Promise<void>((resolve) => this.waiters.push({ count, resolve }));
    return withDeadline(reached, WAIT_MS, `${count} events (have ${this.events.length})`);
  }
}

/** Resolves with the next status a bus reports through `subscribe` (onDisconnect or onReconnect). */
function nextStatus(subscribe: (listener: (info: BusStatusInfo) => void) => () => void, what: string) {
  return withDeadline(
    new Promise<BusStatusInfo>((resolve) => {
      const off = subscribe((info) => {
        off();
        resolve(info);
      });
    }),
    WAIT_MS,
    what,
  );
}

describe('bus events', () => {
  it('round-trips every event type through the wire format', () => {
    for (const event of sampleEvents()) {
      assert.deepEqual(parseEvent(encodeEvent(event), JOB), event);
    }
  });

  it('rejects corrupt, unknown, incomplete and foreign messages, naming the problem', () => {
    const bytes = (text: string) => new TextEncoder().encode(text);
    const cases: Array<[string, RegExp]> = [
      ['{"type": "freeze",', /expected JSON/],
      [JSON.stringify({ ...sampleEvents()[0], type: 'explode' }), /type: Invalid discriminator value/],
      [JSON.stringify({ ...lrChange(2), lrByGroup: { backbone: 0.1 } }), /lrByGroup\.head/],
      [JSON.stringify({ ...sampleEvents()[0], effectiveStep: '12' }), /effectiveStep: .*expected number/],
      [JSON.stringify({ ...sampleEvents()[0], jobId: 'job-8' }), /jobId: expected 'job-7', event has 'job-8'/],
    ];
    for (const [text, problem] of cases) {
      assert.throws(
        () => parseEvent(bytes(text), JOB),
        (err: unknown) => err instanceof EventValidationError && problem.test(err.message) && err.subject === eventSubject(JOB),
        text,
      );
    }
  });

  it('compiles options: defaults filled, bad fields named', () => {
    const compiled = compileEventBusOptions({ servers: 'nats://h:1', jobId: JOB, name: 'w' });
    assert.deepEqual(compiled.servers, ['nats://h:1']);
    assert.equal(compiled.reconnectMaxDelayMs, 5000);
    const bad: Array<[Partial<EventBusOptions>, string]> = [
      [{ jobId: 'a.b' }, 'jobId'],
      [{ servers: [] }, 'servers'],
      [{ reconnectInitialDelayMs: 500, reconnectMaxDelayMs: 100 }, 'reconnectMaxDelayMs'],
      [{ publishTimeoutMs: 0 }, 'publishTimeoutMs'],
    ];
    for (const [patch, field] of bad) {
      assert.throws(
        () => compileEventBusOptions({ servers: 'nats://h:1', jobId: JOB, name: 'w', ...patch }),
        (err: unknown) => err instanceof ConfigError && err.field === field,
        field,
      );
    }
  });
});

describe('EventBus with a real nats-server', function () {
  this.timeout(60_000);
  let server: NatsServer;
  let coordinator: EventBus;
  let worker: EventBus;
  const errors: EventBusError[] = [];

  const open = (name: string) =>
    EventBus.connect({
      servers: server.url,
      jobId: JOB,
      name,
      reconnectInitialDelayMs: 50,
      reconnectMaxDelayMs: 500,
      onError: (err) => errors.push(err),
    });

  before(async () => {
    server = await NatsServer.start();
  });
  beforeEach(async () => {
    errors.length = 0;
    coordinator = await open('coordinator');
    worker = await open('worker-0');
  });
  afterEach(async () => {
    await Promise.all([coordinator?.close(), worker?.close()]);
  });
  after(async () => {
    await server?.stop();
  });

  it('delivers every event type in publish order', async () => {
    const got = new Collector();
    const sub = await worker.subscribe(got.handler);
    for (const event of sampleEvents()) await coordinator.publish(event);
    await got.waitForCount(5);
    assert.deepEqual(got.events, sampleEvents());
    assert.deepEqual(sub.stats(), { delivered: 5, rejected: 0, unverified: 0, handlerFailures: 0 });
    assert.deepEqual(errors, []);
  });

  it('rejects corrupt messages published raw and keeps delivering valid events', async () => {
    const got = new Collector();
    const sub = await worker.subscribe(got.handler);
    const raw: NatsConnection = await connect({ servers: server.url });
    try {
      const subject = eventSubject(JOB);
      raw.publish(subject, new TextEncoder().encode('\u0000garbage{'));
      raw.publish(subject, new TextEncoder().encode(JSON.stringify({ ...lrChange(1), type: 'reboot' })));
      raw.publish(subject, new TextEncoder().encode(JSON.stringify({ ...lrChange(1), configVersion: -1 })));
      await raw.flush();
    } finally {
      await raw.close();
    }
    await coordinator.publish(lrChange(2));
    await got.waitForCount(1);
    assert.deepEqual(got.events, [lrChange(2)]);
    assert.deepEqual(sub.stats(), { delivered: 1, rejected: 3, unverified: 0, handlerFailures: 0 });
    assert.equal(errors.length, 3);
    assert.ok(errors.every((e) => e instanceof EventValidationError));
    assert.match(errors[0].message, /expected JSON/);
    assert.match(errors[1].message, /Invalid discriminator value/);
    assert.match(errors[2].message, /configVersion: Too small/);
  });

  it('survives a handler that throws', async () => {
    const got = new Collector();
    const sub = await worker.subscribe((event) => {
      if (event.configVersion === 1) throw new Error('handler bug');
      got.handler(event);
    });
    await coordinator.publish(lrChange(1));
    await coordinator.publish(lrChange(2));
    await got.waitForCount(1);
    assert.deepEqual(got.events, [lrChange(2)]);
    assert.deepEqual(sub.stats(), { delivered: 1, rejected: 0, unverified: 0, handlerFailures: 1 });
    assert.ok(errors[0] instanceof EventHandlerError && /handler bug/.test(errors[0].message));
  });

  it('refuses to publish an invalid event or another job’s event', async () => {
    const broken = { ...lrChange(3), lrByGroup: { backbone: Number.NaN, head: 1 } };
    await assert.rejects(coordinator.publish(broken), EventValidationError);
    await assert.rejects(coordinator.publish({ ...lrChange(3), jobId: 'other-job' }), /jobId: expected 'job-7'/);
  });

  it('across a server restart: publish fails while down, the client reconnects, events flow again', async () => {
    const got = new Collector();
    await worker.subscribe(got.handler);
    await coordinator.publish(lrChange(1));
    await got.waitForCount(1);

    const coordinatorDown = nextStatus((l) => coordinator.onDisconnect(l), 'coordinator disconnect');
    const workerDown = nextStatus((l) => worker.onDisconnect(l), 'worker disconnect');
    await server.stop();
    const down = await coordinatorDown;
    await workerDown;
    assert.equal(down.server, `127.0.0.1:${server.port}`);
    assert.equal(coordinator.connected, false);

    // Documented behaviour: while the bus knows it is down, publish rejects at once (nats.js would
    // accept the message and silently discard it when it redials).
    await assert.rejects(
      coordinator.publish(lrChange(2)),
      (err: unknown) => err instanceof EventPublishError && err.reason === PublishFailure.Disconnected,
    );

    const coordinatorBack = nextStatus((l) => coordinator.onReconnect(l), 'coordinator reconnect');
    const workerBack = nextStatus((l) => worker.onReconnect(l), 'worker reconnect');
    await server.restart();
    const back = await coordinatorBack;
    await workerBack;
    assert.equal(back.reconnects, 1);
    assert.equal(worker.reconnects, 1);
    assert.equal(coordinator.connected, true);

    // onReconnect fires after the worker's subscription is live again, so this event must arrive.
    await coordinator.publish(lrChange(3));
    await got.waitForCount(2);
    assert.deepEqual(
      got.events.map((e) => e.configVersion),
      [1, 3],
      'the event published during the outage is lost (at most once), the later one arrives',
    );
  });

  it('rejects with EventBusConnectError when no server answers the first time', async () => {
    const port = await getFreePort();
    await assert.rejects(
      EventBus.connect({ servers: `nats://127.0.0.1:${port}`, jobId: JOB, name: 'lonely' }),
      (err: unknown) => err instanceof EventBusConnectError && err.message.includes(`127.0.0.1:${port}`),
    );
  });

  it('close() ends subscriptions and later publishes fail as closed', async () => {
    const got = new Collector();
    const sub = await worker.subscribe(got.handler);
    await worker.close();
    await withDeadline(sub.stop(), WAIT_MS, 'subscription loop to end');
    await assert.rejects(
      worker.publish(lrChange(4)),
      (err: unknown) => err instanceof EventPublishError && err.reason === PublishFailure.Closed,
    );
    await coordinator.publish(lrChange(4));
    assert.equal(got.events.length, 0);
  });
});
