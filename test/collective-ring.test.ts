import assert from 'node:assert/strict';
import { NonFiniteValueError, TensorCodecError, TensorChannel, connectTensorChannel, startTensorChannelServer } from '../common/wire';
import { DataPlane, RingError, RingMember, RingReduction, RingStats } from '../common/collective';

/** Deterministic, distinct per member, of mixed sign and magnitude so float32 rounding shows. */
function inputOf(member: number, floats: number, round = 0): Float32Array {
  const a = new Float32Array(floats);
  for (let i = 0; i < floats; i++) a[i] = Math.sin(i * 0.37 + member * 1.3 + round) * (1 + ((i * 7 + member) % 5) * 100);
  return a;
}

/** Element-wise sum in float64, the reference the ring's float32 sums must match. */
function referenceSum(inputs: Float32Array[]): { sum: Float64Array; abs: Float64Array } {
  const n = inputs[0].length;
  const sum = new Float64Array(n);
  const abs = new Float64Array(n);
  for (const x of inputs) for (let i = 0; i < n; i++) {
    sum[i] += x[i];
    abs[i] += Math.abs(x[i]);
  }
  return { sum, abs };
}

/** Every member holds the same bytes, and they are the sum within float32 rounding of W-1 additions. */
function assertReduced(results: Float32Array[], inputs: Float32Array[]): void {
  const { sum, abs } = referenceSum(inputs);
  const bytes0 = Buffer.from(results[0].buffer, results[0].byteOffset, results[0].byteLength);
  results.forEach((r, m) => assert.ok(bytes0.equals(Buffer.from(r.buffer, r.byteOffset, r.byteLength)), `member ${m} differs from member 0`));
  const tol = 2 ** -23 * inputs.length;
  for (let i = 0; i < sum.length; i++) {
    assert.ok(Math.abs(results[0][i] - sum[i]) <= tol * abs[i] + 1e-30, `element ${i}: expected ${sum[i]}, got ${results[0][i]}`);
  }
}

function membersOf(planes: DataPlane[]): RingMember[] {
  return planes.map((p, i) => ({ id: `m${i}`, address: p.address }));
}

function reductionFor(members: RingMember[], rank: number, key: string, timeoutMs = 10_000): RingReduction {
  return { key, members, rank, timeoutMs };
}

/** Settles every member's allreduce; returns each one's stats or error. */
async function runAll(planes: DataPlane[], key: string, data: Float32Array[], timeoutMs = 10_000): Promise<Array<RingStats | RingError>> {
  const members = membersOf(planes);
  const settled = await Promise.allSettled(planes.map((p, r) => p.allreduce(reductionFor(members, r, key, timeoutMs), data[r])));
  return settled.map((s) => {
    if (s.status === 'fulfilled') return s.value;
    assert.ok(s.reason instanceof RingError, `expected RingError, got ${String(s.reason)}`);
    return s.reason;
  });
}

/** Resolves once `condition` holds, checking on every turn of the event loop. */
async function until(condition: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!condition()) {
    if (Date.now() - t0 > limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('collective ring allreduce (one process)', () => {
  let planes: DataPlane[] = [];

  async function listen(n: number): Promise<DataPlane[]> {
    planes = await Promise.all(Array.from({ length: n }, () => DataPlane.listen()));
    return planes;
  }

  afterEach(async () => {
    await Promise.all(planes.map((p) => p.close()));
    planes = [];
  });

  for (const world of [1, 2, 3, 4]) {
    for (const floats of [1001, 3, 0]) {
      it(`sums ${floats} floats over ${world} member(s), identical bytes everywhere`, async () => {
        await listen(world);
        const inputs = Array.from({ length: world }, (_, m) => inputOf(m, floats));
        const data = inputs.map((x) => Float32Array.from(x));
        const out = await runAll(planes, `w${world}-n${floats}`, data);
        out.forEach((o, m) => assert.ok(!(o instanceof RingError), `member ${m}: ${String(o)}`));
        assertReduced(data, inputs);
        const stats = out as RingStats[];
        const sent = stats.reduce((a, s) => a + s.bytesSent, 0);
        assert.equal(sent, stats.reduce((a, s) => a + s.bytesReceived, 0), 'bytes sent = bytes received, over the ring');
        // Each segment travels W-1 hops in each half.
        assert.equal(sent, 2 * (world - 1) * floats * 4);
      });
    }
  }

  it('runs several reductions in a row with different keys and vector lengths', async () => {
    await listen(3);
    for (let round = 0; round < 5; round++) {
      const floats = 20_000 + round * 333;
      const inputs = planes.map((_, m) => inputOf(m, floats, round));
      const data = inputs.map((x) => Float32Array.from(x));
      const out = await runAll(planes, `job/step-${round}`, data);
      out.forEach((o, m) => assert.ok(!(o instanceof RingError), `round ${round} member ${m}: ${String(o)}`));
      assertReduced(data, inputs);
    }
  });

  it('holds connections that arrive before the local allreduce call', async () => {
    const [p0, p1, p2] = await listen(3);
    const members = membersOf(planes);
    const inputs = planes.map((_, m) => inputOf(m, 5000));
    const data = inputs.map((x) => Float32Array.from(x));
    // Member 1 connects to member 0 (its previous) long before member 0 calls allreduce.
    const late = [p1.allreduce(reductionFor(members, 1, 'early'), data[1]), p2.allreduce(reductionFor(members, 2, 'early'), data[2])];
    await until(() => p0.heldConnections === 1, 'member 1 connected to member 0');
    await Promise.all([p0.allreduce(reductionFor(members, 0, 'early'), data[0]), ...late]);
    assertReduced(data, inputs);
    assert.equal(p0.heldConnections, 0);
  });

  it('rejects a second concurrent reduction and bad arguments', async () => {
    const [p0, p1] = await listen(2);
    const members = membersOf(planes);
    const first = p0.allreduce(reductionFor(members, 0, 'a'), new Float32Array(10));
    await assert.rejects(p0.allreduce(reductionFor(members, 0, 'b'), new Float32Array(10)), (err: RingError) =>
      err instanceof RingError && err.phase === 'start' && /'a' is still running/.test(err.message));
    await p1.allreduce(reductionFor(members, 1, 'a'), new Float32Array(10));
    await first;
    await assert.rejects(p0.allreduce(reductionFor(members, 2, 'c'), new Float32Array(1)), /expected a rank in \[0, 1\], got 2/);
    await assert.rejects(p0.allreduce({ key: 'd', members: [members[0], { ...members[1], id: 'm0' }], rank: 0, timeoutMs: 100 }, new Float32Array(1)),
      /expected unique member ids/);
  });

  it('fails every member at once when a member disagrees on the vector length', async () => {
    await listen(3);
    const data = [new Float32Array(100), new Float32Array(101), new Float32Array(100)];
    const out = await runAll(planes, 'mismatch', data, 60_000);
    out.forEach((o, m) => assert.ok(o instanceof RingError, `member ${m} should fail, got ${JSON.stringify(o)}`));
    const handshake = out.filter((o) => o instanceof RingError && o.phase === 'handshake' && /expected 10[01] floats, 'm\d' reduces 10[01]/.test(o.message));
    assert.ok(handshake.length >= 1, `expected a handshake error naming the lengths, got ${out.map(String).join(' | ')}`);
  });

  it('fails with NonFiniteValueError at the neighbour of a member that sends NaN', async () => {
    await listen(3);
    const floats = 3000;
    const data = planes.map((_, m) => inputOf(m, floats));
    data[1][1500] = NaN; // segment 1: member 1 sends it to member 2 in the first reduce-scatter step
    const out = await runAll(planes, 'nan', data, 60_000);
    out.forEach((o, m) => assert.ok(o instanceof RingError, `member ${m} should fail, got ${JSON.stringify(o)}`));
    const at2 = out[2] as RingError;
    assert.ok(at2.cause instanceof NonFiniteValueError, `expected NonFiniteValueError at member 2, got ${String(at2.cause)}`);
    assert.equal(at2.peer, 'm1');
    assert.equal(at2.phase, 'reduce-scatter');
    assert.equal(at2.key, 'nan');
  });

  it('times out when a member never shows up', async () => {
    await listen(3);
    const members = membersOf(planes);
    const settled = await Promise.allSettled([0, 1].map((r) => planes[r].allreduce(reductionFor(members, r, 'absent', 300), new Float32Array(64))));
    for (const s of settled) {
      assert.equal(s.status, 'rejected');
      const err = (s as PromiseRejectedResult).reason as RingError;
      assert.ok(err instanceof RingError && /not done within 300 ms/.test(err.message), String(err));
    }
  });

  describe('against a hand-written peer', () => {
    let fakeServer: Awaited<ReturnType<typeof startTensorChannelServer>> | undefined;
    let fakeOut: TensorChannel | undefined;
    afterEach(async () => {
      await fakeOut?.close();
      await fakeServer?.close();
    });

    it('fails with TensorCodecError on a segment of the wrong length', async () => {
      const [p0] = await listen(1);
      fakeServer = await startTensorChannelServer();
      const members: RingMember[] = [{ id: 'real', address: p0.address }, { id: 'fake', address: `127.0.0.1:${fakeServer.port}` }];
      const result = p0.allreduce(reductionFor(members, 0, 'short'), new Float32Array(100));
      result.catch(() => undefined);
      // The real member connects to the fake (its previous) and says hello; the fake answers in kind.
      const fromReal = await fakeServer.accept();
      const hello = (await fromReal.receive()).meta;
      fakeOut = await connectTensorChannel('127.0.0.1', Number(p0.address.split(':')[1]));
      await fakeOut.send([], { ...hello, from: 'fake', to: 'real' });
      await fromReal.send([{ name: 'reduce-scatter/step-0/segment-1', dtype: 'float32', shape: [49], data: new Float32Array(49) }]);
      await assert.rejects(result, (err: RingError) => {
        assert.ok(err instanceof RingError, String(err));
        assert.ok(err.cause instanceof TensorCodecError, `expected TensorCodecError, got ${String(err.cause)}`);
        assert.match(err.message, /expected shape \[50\] float32, frame has shape \[49\]/);
        assert.equal(err.peer, 'fake');
        return true;
      });
    });
  });
});
