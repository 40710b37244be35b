/**
 * Ring allreduce among real processes, with faults: a member SIGKILLed mid-reduction, a member that
 * never calls allreduce. Forks this same file with `--ring-member`, which runs one DataPlane driven
 * over the fork IPC channel instead of defining tests.
 */
import assert from 'node:assert/strict';
import { ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { DataPlane, RingError, RingMember } from '../common/collective';

type ToMember = { type: 'run'; key: string; members: RingMember[]; rank: number; floats: number; timeoutMs: number };
type FromMember =
  | { type: 'listening'; address: string }
  | { type: 'started' }
  | { type: 'done'; first: number }
  | { type: 'failed'; name: string; phase?: string; peer?: string; message: string; cause?: string };

/** The child side: one DataPlane, one reduction per 'run' message, results reported to the parent. */
async function member(): Promise<void> {
  const plane = await DataPlane.listen();
  const send = (m: FromMember): void => void process.send?.(m);
  process.on('message', (m: ToMember) => {
    const data = new Float32Array(m.floats).fill(m.rank + 1);
    send({ type: 'started' });
    plane.allreduce({ key: m.key, members: m.members, rank: m.rank, timeoutMs: m.timeoutMs }, data).then(
      () => send({ type: 'done', first: data[0] }),
      (err: unknown) => {
        const e = err as RingError;
        send({ type: 'failed', name: e.name, phase: e.phase, peer: e.peer, message: e.message, cause: (e.cause as Error | undefined)?.name });
      },
    );
  });
  process.on('disconnect', () => void plane.close().then(() => process.exit(0)));
  send({ type: 'listening', address: plane.address });
}

/** A forked member and the next message it sends. */
class Member {
  readonly id: string;
  private readonly inbox: FromMember[] = [];
  private waiter?: (m: FromMember) => void;
  constructor(readonly child: ChildProcess, index: number) {
    this.id = `p${index}`;
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

  async expect<T extends FromMember['type']>(type: T): Promise<Extract<FromMember, { type: T }>> {
    const m = await this.next();
    assert.equal(m.type, type, `${this.id}: expected '${type}', got ${JSON.stringify(m)}`);
    return m as Extract<FromMember, { type: T }>;
  }
}

if (process.argv.includes('--ring-member')) {
  void member();
} else {
  describe('collective ring allreduce (processes)', function () {
    this.timeout(60_000);
    let members: Member[] = [];

    async function start(n: number): Promise<RingMember[]> {
      members = Array.from({ length: n }, (_, i) => new Member(fork(__filename, ['--ring-member'], { execArgv: ['--import', 'tsx'] }), i));
      const addresses = await Promise.all(members.map((m) => m.expect('listening')));
      return addresses.map((a, i) => ({ id: members[i].id, address: a.address }));
    }

    function run(m: Member, ring: RingMember[], key: string, floats: number, timeoutMs: number): void {
      m.child.send({ type: 'run', key, members: ring, rank: members.indexOf(m), floats, timeoutMs } satisfies ToMember);
    }

    afterEach(async () => {
      await Promise.all(members.map(async (m) => {
        if (m.child.exitCode !== null || m.child.signalCode !== null) return;
        const exited = once(m.child, 'exit');
        m.child.disconnect();
        await exited;
      }));
      members = [];
    });

    it('sums over 3 processes, then survivors fail fast when one is SIGKILLed mid-reduction', async () => {
      const ring = await start(3);
      members.forEach((m) => run(m, ring, 'ok', 100_003, 30_000));
      for (const m of members) await m.expect('started');
      for (const m of members) assert.equal((await m.expect('done')).first, 6);
      // 64 MB each: the kill lands while segments are on the wire (or while connecting; either way mid-reduction).
      members.forEach((m) => run(m, ring, 'killed', 16_000_000, 120_000));
      for (const m of members) await m.expect('started');
      members[1].child.kill('SIGKILL');
      for (const m of [members[0], members[2]]) {
        const r = await m.expect('failed');
        assert.equal(r.name, 'RingError', JSON.stringify(r));
        assert.match(r.message, /ring allreduce 'killed'/);
      }
    });

    it('survivors fail fast when a member that has not started yet is SIGKILLed', async () => {
      const ring = await start(3);
      // p2 is held up: never told to run. p0 connects to it (held there), p1 connects to p0.
      run(members[0], ring, 'held-up', 1000, 120_000);
      run(members[1], ring, 'held-up', 1000, 120_000);
      for (const m of [members[0], members[1]]) await m.expect('started');
      members[2].child.kill('SIGKILL');
      const [r0, r1] = await Promise.all([members[0].expect('failed'), members[1].expect('failed')]);
      assert.equal(r0.peer, 'p2', JSON.stringify(r0));
      assert.equal(r0.cause, 'StreamClosedError', JSON.stringify(r0));
      assert.equal(r1.name, 'RingError', JSON.stringify(r1));
    });

    it('fails on the timeout when a member never shows up', async () => {
      const ring = await start(3);
      run(members[0], ring, 'absent', 1000, 1500);
      run(members[1], ring, 'absent', 1000, 1500);
      const results = await Promise.all([members[0], members[1]].map(async (m) => {
        await m.expect('started');
        return m.expect('failed');
      }));
      for (const r of results) assert.equal(r.name, 'RingError', JSON.stringify(r));
      // Whichever times out first closes its channels, which fails the other one at once.
      assert.ok(results.some((r) => /not done within 1500 ms \(waiting for 'p2'\)/.test(r.message) && r.peer === 'p2'), JSON.stringify(results));
    });
  });
}
