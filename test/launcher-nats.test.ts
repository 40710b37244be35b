import assert from 'node:assert/strict';
import { BusEventType, EventBus } from '../common/bus';
import { NatsServerMissingError, startLocalNats } from '../launcher';

describe('launcher: nats-server', () => {
  it('starts a real server on a port it picked itself, carries an event, and stops', async function () {
    const nats = await startLocalNats().catch((err: unknown) => {
      if (err instanceof NatsServerMissingError) this.skip();
      throw err;
    });
    let bus: EventBus | undefined;
    try {
      assert.match(nats.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
      assert.ok(nats.port > 0);
      bus = await EventBus.connect({ servers: nats.url, jobId: 'launcher-test', name: 'test' });
      let deliver: (workers: number) => void = () => undefined;
      const received = new Promise<number>((resolve) => (deliver = resolve));
      // subscribe() resolves once the server has registered the subscription, so the publish reaches it.
      await bus.subscribe((event) => {
        if (event.type === BusEventType.Scale) deliver(event.desiredWorkers);
      });
      await bus.publish({ type: BusEventType.Scale, jobId: 'launcher-test', configVersion: 0, effectiveStep: 0, desiredWorkers: 3 });
      assert.equal(await received, 3);
    } finally {
      await bus?.close();
      await nats.process.stop();
    }
    assert.equal(nats.process.running, false);
  });

  it('a missing binary is an error that says how to install it and how to run without it', async () => {
    const err = await startLocalNats({ command: 'nats-server-not-installed' }).catch((e: unknown) => e);
    assert.ok(err instanceof NatsServerMissingError, `expected NatsServerMissingError, got ${String(err)}`);
    assert.match(err.message, /apt-get install nats-server/);
    assert.match(err.message, /--no-bus/);
  });
});
