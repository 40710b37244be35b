/**
 * The collective's allreduce among real processes, with faults: a member SIGKILLed mid-reduction, before
 * it started, or between reductions (its pooled connections dead), a member that never calls allreduce.
 * Forks this same file with `--ring-member`, which runs one DataPlane driven over the fork IPC channel
 * instead of defining tests.
 */
import assert from 'node:assert/strict';
import { ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { DataPlane, AllreduceError, AllreduceMember, MIN_SEGMENT_FLOATS } from '../common/collective';

type ToMember = { type: 'run'; key: string; members: AllreduceMember[]; rank: number; floats: number; timeoutMs: number };
type FromMember =
  | { type: 'listening'; address: string }
  | { type: 'started' }
  | { type: 'done'; first: number; last: number; opened: number }
  | { type: 'failed'; name: string; phase?: string; peer?: string; message: string; cause?: string };

/** The child side: one DataPlane, one reduction per 'run' message (input: rank + 1 everywhere), results reported to the parent. */
async function member(): Promise<void> {
  const plane = await DataPlane.listen();
  const send = (m: FromMember): void => void process.send?.(m);
  process.on('message', (m: ToMember) => {
    const data = new Float32Array(m.floats).fill(m.rank + 1);
    send({ type: 'started' });
    plane.allreduce({ key: m.key, members: m.members, rank: m.rank, timeoutMs: m.timeoutMs }, data).then(
      () => send({ type: 'done', first: data[0], last: data[data.length - 1], opened: plane.connectionsOpened }),
      (err: unknown) => {
        const e = err as AllreduceError;
        send({ type: 'failed', name: e.name, phase: e.phase, peer: e.peer, message: e.message, cause: (e.cause as Error | undefined)?.name });
      },
    );
  });
  process.on('disconnect', () => void plane.close().then(() => process.exit(0)));
  send({ type: 'listening', address: plane.address });
}

/** A forked member and the messages it sends. */
class Member {
  private readonly inbox: FromMember[] = [];
  private waiter?: (m: FromMember) => void;
  address = '';
  constructor(readonly child: ChildProcess, readonly id: string) {
    child.on('message', (m: FromMember) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(m);
      } else this.inbox.push(m);
    });
  }

  next(): Promise<FromMember> {
    const m = this.inbox.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** The next message of `type`; a 'started' before it is skipped unless `type` is 'started'. */
  async expect<T extends FromMember['type']>(type: T): Promise<Extract<FromMember, { type: T }>> {
    let m = await this.next();
    if (m.type === 'started' && type !== 'started') m = await this.next();
    assert.equal(m.type, type, `${this.id}: expected '${type}', got ${JSON.stringify(m)}`);
    return m as Extract<FromMember, { type: T }>;
  }

  as(role?: 'observer'): AllreduceMember {
    return { id: this.id, address: this.address, ...(role ? { role } : {}) };
  }
}

if (process.argv.includes('--ring-member')) {
  void member();
} else {
  describe('collective allreduce (processes)', function () {
    this.timeout(60_000);
    let members: Member[] = [];

    async function start(n: number): Promise<Member[]> {
      const started = Array.from({ length: n }, () => {
        const id = `p${members.length}`;
        const m = new Member(fork(__filename, ['--ring-member'], { execArgv: ['--import', 'tsx'] }), id);
        members.push(m);
        return m;
      });
      for (const m of started) m.address = (await m.expect('listening')).address;
      return started;
    }

    /** Tells each of `who` to run reduction `key` among `ring` (its rank: its place in `ring`). */
    function run(who: Member[], ring: AllreduceMember[], key: string, floats: number, timeoutMs: number): void {
      for (const m of who) m.child.send({ type: 'run', key, members: ring, rank: ring.findIndex((r) => r.id === m.id), floats, timeoutMs } satisfies ToMember);
    }

    afterEach(async () => {
      await Promise.all(members.map(async (m) => {
        if (m.child.exitCode !== null || m.child.signalCode !== null) return;
        const exited = once(m.child, 'exit');
        if (m.child.connected) m.child.disconnect(); // a SIGKILLed child may be disconnected before its 'exit'
        await exited;
      }));
      members = [];
    });

    it('sums over 3 processes, then survivors fail fast when one is SIGKILLed mid-reduction', async () => {
      const ps = await start(3);
      const ring = ps.map((m) => m.as());
      // Three segments (one per member), so every member links to both others.
      run(ps, ring, 'ok', 3 * MIN_SEGMENT_FLOATS + 3, 30_000);
      for (const m of ps) await m.expect('started');
      for (const m of ps) assert.deepEqual(await m.expect('done'), { type: 'done', first: 6, last: 6, opened: 2 });
      // 64 MB each: the kill lands while segments are on the wire, long before the 120 s timeout.
      run(ps, ring, 'killed', 16_000_000, 120_000);
      for (const m of ps) await m.expect('started');
      ps[1].child.kill('SIGKILL');
      for (const m of [ps[0], ps[2]]) {
        const r = await m.expect('failed');
        assert.equal(r.name, 'AllreduceError', JSON.stringify(r));
        assert.match(r.message, /allreduce 'killed'/);
        assert.doesNotMatch(r.message, /not done within/);
      }
    });

    it('survivors fail fast when a member that has not started yet is SIGKILLed', async () => {
      const ps = await start(3);
      const ring = ps.map((m) => m.as());
      // p2 is held up: never told to run. p0 and p1 connect to it to receive from it, and wait.
      run([ps[0], ps[1]], ring, 'held-up', 1000, 120_000);
      for (const m of [ps[0], ps[1]]) await m.expect('started');
      ps[2].child.kill('SIGKILL');
      const results = await Promise.all([ps[0].expect('failed'), ps[1].expect('failed')]);
      for (const r of results) {
        assert.equal(r.name, 'AllreduceError', JSON.stringify(r));
        assert.doesNotMatch(r.message, /not done within/);
      }
      // Whichever notices first blames p2 and closes its connections, which fails the other one at once.
      assert.ok(results.some((r) => r.peer === 'p2' && r.cause === 'StreamClosedError'), JSON.stringify(results));
    });

    it('fails fast on the pooled connections of a member SIGKILLed between reductions, then goes on without it', async () => {
      // p0 observes (as the coordinator does), p1..p3 contribute their rank + 1: 2 + 3 + 4.
      const ps = await start(4);
      const all = [ps[0].as('observer'), ...ps.slice(1).map((m) => m.as())];
      run(ps, all, 'before', 10_000, 30_000);
      for (const m of ps) assert.equal((await m.expect('done')).first, 9);
      const exited = once(ps[2].child, 'exit');
      ps[2].child.kill('SIGKILL');
      await exited;
      // Everyone still lists p2: the ones that receive from it fail at once, not at the 120 s timeout.
      const survivors = [ps[0], ps[1], ps[3]];
      run(survivors, all, 'with-dead', 10_000, 120_000);
      for (const m of survivors) {
        const r = await m.expect('failed');
        assert.equal(r.name, 'AllreduceError', JSON.stringify(r));
        assert.doesNotMatch(r.message, /not done within/);
      }
      // Without p2 (inputs are rank + 1): 2 + 3, over connections reopened where the failure closed them.
      const without = [ps[0].as('observer'), ps[1].as(), ps[3].as()];
      run(survivors, without, 'without', 10_000, 30_000);
      for (const m of survivors) assert.equal((await m.expect('done')).first, 5);
      // A new process takes p2's place (new id, new address): 2 + 3 + 4.
      const [p4] = await start(1);
      const replaced = [...without, p4.as()];
      run([...survivors, p4], replaced, 'replaced', 10_000, 30_000);
      for (const m of [...survivors, p4]) assert.equal((await m.expect('done')).first, 9);
    });

    it('fails on the timeout when a member never shows up', async () => {
      const ps = await start(3);
      const ring = ps.map((m) => m.as());
      run([ps[0], ps[1]], ring, 'absent', 1000, 1500);
      const results = await Promise.all([ps[0], ps[1]].map(async (m) => {
        await m.expect('started');
        return m.expect('failed');
      }));
      for (const r of results) assert.equal(r.name, 'AllreduceError', JSON.stringify(r));
      // Whichever times out first closes its connections, which fails the other one at once.
      assert.ok(results.some((r) => /not done within 1500 ms \(waiting for 'p2'\)/.test(r.message) && r.peer === 'p2'), JSON.stringify(results));
    });
  });
}
