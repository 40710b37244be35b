/**
 * The collective's allreduce among DataPlanes of one process over real loopback sockets: the summation
 * tree's (bit-exact) sums whatever the split, observers, pooled connections, and the failures members must agree on.
 * Process deaths are in collective-process.test.ts.
 */
import assert from 'node:assert/strict';
import { NonFiniteValueError, TensorChannel, connectTensorChannel, startTensorChannelServer } from '../common/wire';
import { DataPlane, AllreduceError, AllreduceMember, AllreduceStats, isDirect, MIN_SEGMENT_FLOATS } from '../common/collective';
import { assertAllEqual, assertAllFailed, assertAllSucceeded, bytesOf, inputOf, leftFold, membersOf, reductionFor, runAll, treeSum, until, TestPlanes } from './support/allreduce-members';
import { TreeFold } from '../common/collective/tree-fold';
import { SimdScratch } from '../common/collective/simd-scratch';

describe('collective TreeFold', () => {
  it('adds the parts of any split by the summation tree bit for bit, whatever order they arrive in', () => {
    const leaves = [0, 1, 2, 3, 4].map((m) => inputOf(m, 257));
    const expected = treeSum(leaves);
    // Another association gives other bytes on these inputs, so the comparison below can fail.
    assert.ok(!bytesOf(leftFold(leaves)).equals(bytesOf(expected)), 'inputs too tame to tell associations apart');
    const sumOf = (r: { start: number; end: number }) => treeSum(leaves.slice(r.start, r.end));
    // Splits of 5 micro-batches (tree: [0,3) = [0,2) + [2,3), [3,5)) into nodes per contributor.
    const splits = [
      [[{ start: 0, end: 3 }], [{ start: 3, end: 5 }]],
      [[{ start: 0, end: 1 }], [{ start: 1, end: 2 }, { start: 2, end: 3 }, { start: 3, end: 4 }], [{ start: 4, end: 5 }]],
      [[{ start: 0, end: 2 }, { start: 4, end: 5 }], [{ start: 2, end: 3 }, { start: 3, end: 4 }]],
    ];
    const scratch = new SimdScratch();
    for (const parts of splits) {
      for (let own = 0; own < parts.length; ++own) {
        for (const reversed of [false, true]) {
          const target = new Float32Array(257);
          const fold = new TreeFold(target, parts[own].map(sumOf), own, parts, 5, scratch);
          const others = parts.flatMap((p, k) => (k === own ? [] : p.map((_, i) => [k, i] as const)));
          for (const [k, i] of reversed ? others.reverse() : others) {
            assert.equal(fold.done, false);
            fold.slot(k, i).set(sumOf(parts[k][i]));
            fold.arrive(k, i);
          }
          assert.equal(fold.done, true);
          assertAllEqual([target], expected);
        }
      }
    }
  });
});

describe('collective allreduce (one process)', () => {
  const open = new TestPlanes();
  const listen = (n: number): Promise<DataPlane[]> => open.listen(n);

  for (const world of [1, 2, 3, 4]) {
    for (const floats of [1001, 3, 0]) {
      it(`sums ${floats} floats over ${world} member(s), the summation tree's bytes everywhere`, async () => {
        await listen(world);
        const inputs = Array.from({ length: world }, (_, m) => inputOf(m, floats));
        const data = inputs.map((x) => Float32Array.from(x));
        const stats = assertAllSucceeded(await runAll(open.planes, `w${world}-n${floats}`, data));
        assertAllEqual(data, treeSum(inputs));
        const sent = stats.reduce((a, s) => a + s.bytesSent, 0);
        assert.equal(sent, stats.reduce((a, s) => a + s.bytesReceived, 0), 'bytes sent = bytes received');
        // Every segment: C-1 parts to its owner, then the reduced segment to the other M-1 members; direct:
        // every member's part to each of the M-1 others, and no sum.
        const frames = isDirect(floats, world) ? world * (world - 1) : 2 * (world - 1);
        assert.equal(sent, world === 1 ? 0 : frames * floats * 4);
      });
    }
  }

  for (const contributors of [2, 3, 4, 5]) {
    it(`is bit-exact to the summation tree with ${contributors} contributors`, async () => {
      await listen(contributors);
      const floats = 20_011;
      const inputs = open.planes.map((_, m) => inputOf(m, floats));
      const expected = treeSum(inputs);
      if (contributors > 2) {
        const other = leftFold([...inputs.slice(1), inputs[0]]); // ((p1 + p2) + …) + p0
        assert.ok(!bytesOf(other).equals(bytesOf(expected)), 'inputs too tame: another association gives the same bytes');
      }
      for (let round = 0; round < 2; round++) {
        const data = inputs.map((x) => Float32Array.from(x));
        assertAllSucceeded(await runAll(open.planes, `exact-${round}`, data));
        assertAllEqual(data, expected);
      }
    });
  }

  // 4 micro-batches (tree [0,2) + [2,4)) split 4, 2+1+1 and 1+3 among contributors behind an observer,
  // and 3 (tree [0,2) + [2,3)) split 1+2: every split gives the single-process trainer's bytes.
  const splits: Array<{ name: string; leaves: number; parts: Array<Array<[number, number]>> }> = [
    { name: '4', leaves: 4, parts: [[[0, 2], [2, 4]]] },
    { name: '2+1+1', leaves: 4, parts: [[[0, 2]], [[2, 3]], [[3, 4]]] },
    { name: '1+3', leaves: 4, parts: [[[0, 1]], [[1, 2], [2, 4]]] },
    { name: '1+2', leaves: 3, parts: [[[0, 1]], [[1, 2], [2, 3]]] },
  ];
  for (const { name, leaves, parts } of splits) {
    it(`gives the summation tree's bytes for the split ${name} of ${leaves} micro-batches, one vector per part`, async () => {
      await listen(parts.length + 1);
      const floats = parts.length * MIN_SEGMENT_FLOATS + 3; // one segment per contributor, as the byte count below assumes
      const micro = Array.from({ length: leaves }, (_, m) => inputOf(m, floats));
      const members: AllreduceMember[] = [{ id: 'observer', address: open.planes[0].address, role: 'observer' },
        ...parts.map((p, k) => ({ id: `w${k}`, address: open.planes[k + 1].address, parts: p.map(([start, end]) => ({ start, end })) }))];
      const data = [new Float32Array(floats), ...parts.map((p) => {
        const input = new Float32Array(p.length * floats);
        p.forEach(([start, end], i) => input.set(treeSum(micro.slice(start, end)), i * floats));
        return input;
      })];
      const stats = assertAllSucceeded(await runAll(open.planes, `split-${name}`, data, members));
      assertAllEqual(data.map((d) => d.subarray(0, floats)), treeSum(micro));
      // Each part's slices go to the other owners once; each owner's reduced segment to every other member.
      const c = parts.length;
      const seg = (j: number) => Math.min(floats, (j + 1) * Math.ceil(floats / c)) - Math.min(floats, j * Math.ceil(floats / c));
      const expectedSent = parts.reduce((n, p, k) => n + p.length * (floats - seg(k)) + seg(k) * c, 0) * 4;
      assert.equal(stats.reduce((n, x) => n + x.bytesSent, 0), expectedSent);
    });
  }

  it('refuses parts that do not cover the micro-batches with nodes of the summation tree', async () => {
    await listen(2);
    const bad: Array<[Array<[number, number]>, Array<[number, number]>, RegExp]> = [
      [[[0, 1]], [[1, 3]], /expected a node of the summation tree over 3 micro-batches, got \[1, 3\)/],
      [[[0, 2]], [[1, 3]], /\[1, 3\)|overlap/],
      [[[0, 1]], [[2, 3]], /expected all 3 micro-batches in the sum, have \[0, 1\) \[2, 3\)/],
    ];
    for (const [a, b, message] of bad) {
      const members = [a, b].map((p, k) => ({ id: `w${k}`, address: open.planes[k].address, parts: p.map(([start, end]) => ({ start, end })) }));
      const out = assertAllFailed(await runAll(open.planes, 'bad-parts', [new Float32Array(a.length * 8), new Float32Array(b.length * 8)], members));
      for (const err of out) {
        assert.equal(err.phase, 'start');
        assert.match(err.message, message);
      }
    }
  });

  const observerCases: Array<{ world: number; observer: number }> = [
    { world: 3, observer: 0 },
    { world: 4, observer: 0 },
    { world: 3, observer: 1 },
    { world: 4, observer: 2 },
  ];
  for (const { world, observer } of observerCases) {
    it(`gives an observer at rank ${observer} (of ${world}) the contributors' sum and ignores its input`, async () => {
      await listen(world);
      const floats = 10_007;
      const inputs = open.planes.map((_, m) => inputOf(m, floats));
      const members = membersOf(open.planes, [observer]);
      const data = inputs.map((x) => Float32Array.from(x)); // the observer's input: nonzero garbage
      const stats = assertAllSucceeded(await runAll(open.planes, 'observed', data, members));
      assertAllEqual(data, treeSum(inputs.filter((_, m) => m !== observer)));
      assert.equal(stats[observer].bytesSent, 0, 'an observer sends no data');
      // It receives the sum once, or (direct) every contributor's part, and adds them itself.
      assert.equal(stats[observer].bytesReceived, (isDirect(floats, world - 1) ? world - 1 : 1) * floats * 4);
    });
  }

  it('sends a single contributor\'s data to the observers, and refuses a reduction without contributors', async () => {
    await listen(3);
    const inputs = open.planes.map((_, m) => inputOf(m, 999));
    const data = inputs.map((x) => Float32Array.from(x));
    assertAllSucceeded(await runAll(open.planes, 'one', data, membersOf(open.planes, [0, 2])));
    assertAllEqual(data, inputs[1]);
    const out = assertAllFailed(await runAll(open.planes, 'none', data, membersOf(open.planes, [0, 1, 2])));
    for (const err of out) assert.match(err.message, /'none', start: expected at least one contributor, got 3 observer/);
  });

  it('reuses its connections across reductions, and reconnects to a member replaced by another plane', async () => {
    await listen(4);
    const members = membersOf(open.planes, [0]);
    const opened: number[][] = [];
    for (let round = 0; round < 5; round++) {
      const floats = 3 * MIN_SEGMENT_FLOATS + round * 333; // one segment per contributor
      const inputs = open.planes.map((_, m) => inputOf(m, floats, round));
      const data = inputs.map((x) => Float32Array.from(x));
      assertAllSucceeded(await runAll(open.planes, `job/step-${round}`, data, members));
      assertAllEqual(data, treeSum(inputs.slice(1)));
      opened.push(open.planes.map((p) => p.connectionsOpened));
    }
    // A member opens one connection to each contributor it receives from, once.
    assert.deepEqual(opened[0], [3, 2, 2, 2]);
    for (const o of opened) assert.deepEqual(o, opened[0]);
    assert.deepEqual(open.planes.map((p) => p.pooledConnections), [3, 5, 5, 5]);

    // Member 3 is replaced by a new plane (new id, new address): the next reduction connects to it.
    await open.planes[3].close();
    open.planes[3] = await DataPlane.listen();
    const replaced = membersOf(open.planes, [0]).map((m, i) => (i === 3 ? { ...m, id: 'm3-new' } : m));
    const inputs = open.planes.map((_, m) => inputOf(m, 3 * MIN_SEGMENT_FLOATS, 9));
    const data = inputs.map((x) => Float32Array.from(x));
    assertAllSucceeded(await runAll(open.planes, 'after-replacement', data, replaced));
    assertAllEqual(data, treeSum(inputs.slice(1)));
    assert.deepEqual(open.planes.map((p) => p.connectionsOpened), [4, 3, 3, 2]);
  });

  it('keeps data that arrives for a reduction until it starts here', async () => {
    const [p0, p1, p2] = await listen(3);
    const members = membersOf(open.planes);
    const inputs = open.planes.map((_, m) => inputOf(m, 50_000));
    const data = inputs.map((x) => Float32Array.from(x));
    // Members 1 and 2 start (connect to member 0, say they are ready) long before member 0 calls allreduce.
    const late = [p1.allreduce(reductionFor(members, 1, 'early'), data[1]), p2.allreduce(reductionFor(members, 2, 'early'), data[2])];
    await until(() => p0.pooledConnections === 2, 'members 1 and 2 connected to member 0');
    await Promise.all([p0.allreduce(reductionFor(members, 0, 'early'), data[0]), ...late]);
    assertAllEqual(data, treeSum(inputs));
  });

  const connections = (): number => open.planes.reduce((n, p) => n + p.pooledConnections, 0);
  // 50,000 floats: one segment, owned by member 0 (4 links, counted at both ends); 1,000: a direct reduction
  // (every member receives from both others: 6 links).
  const lateCases = [
    { late: 0, floats: 50_000, links: 8, what: 'the owner' },
    { late: 2, floats: 50_000, links: 8, what: 'a contributor owning nothing' },
    { late: 2, floats: 1_000, links: 12, what: 'a direct reduction' },
  ];
  for (const { late, floats, links, what } of lateCases) {
    it(`starts before member ${late}'s input is in (${what}), and sends it only once it is`, async () => {
      await listen(3);
      const members = membersOf(open.planes);
      const inputs = open.planes.map((_, m) => inputOf(m, floats));
      const data = inputs.map((x, m) => (m === late ? new Float32Array(x.length) : Float32Array.from(x)));
      let give!: () => void;
      const input = new Promise<void>((resolve) => (give = resolve));
      const runs = open.planes.map((p, r) => p.allreduce(reductionFor(members, r, `pending-${late}`), data[r], r === late ? input : undefined));
      // Every link is up, the late member's included (it connects and says ready without its input); had it
      // sent the zeros its data holds now, the sum below would lack its input.
      await until(() => connections() === links, `every link of the reduction up (${links / 2})`);
      data[late].set(inputs[late]);
      give();
      assertAllSucceeded(await Promise.all(runs));
      assertAllEqual(data, treeSum(inputs));
    });
  }

  for (const { floats, links, what } of lateCases.slice(1)) {
    it(`fails every member at once when a member's input never comes (${what === 'a direct reduction' ? what : 'one owner'})`, async () => {
      await listen(3);
      const members = membersOf(open.planes);
      let refuse!: (err: Error) => void;
      const input = new Promise<void>((_, reject) => (refuse = reject));
      const t0 = performance.now();
      const runs = Promise.allSettled(open.planes.map((p, r) => p.allreduce(reductionFor(members, r, 'no-input'), new Float32Array(floats), r === 1 ? input : undefined)));
      await until(() => connections() === links, `every link of the reduction up (${links / 2})`);
      refuse(new Error('the compute failed'));
      const out = assertAllFailed((await runs).map((s) => (s.status === 'rejected' ? s.reason : s.value)));
      assert.equal(out[1].phase, 'start');
      assert.match(out[1].message, /its own input never came: the compute failed/);
      assert.ok(performance.now() - t0 < 5_000, 'the others fail at once, not at their 10 s timeout');
    });
  }

  for (const when of ['before', 'after'] as const) {
    it(`fails the others at once when a member refuses the reduction ${when} they start it`, async () => {
      const [p0, p1, p2] = await listen(3);
      const members = membersOf(open.planes);
      const t0 = performance.now();
      if (when === 'before') p0.refuse('refused');
      const runs = Promise.allSettled([p1, p2].map((p, i) => p.allreduce(reductionFor(members, i + 1, 'refused'), new Float32Array(100))));
      // Member 0 owns the one segment: both others connect to it to receive the sum, and say they are ready.
      if (when === 'after') {
        await until(() => p0.pooledConnections === 2, 'members 1 and 2 connected to member 0');
        p0.refuse('refused');
      }
      const out = (await runs).map((r) => (r.status === 'rejected' ? r.reason : r.value));
      for (const err of out) assert.ok(err instanceof AllreduceError, `expected AllreduceError, got ${String(err)}`);
      assert.ok(performance.now() - t0 < 5_000, 'the others fail at once, not at their 10 s timeout');
    });
  }

  it('rejects a second concurrent reduction and bad arguments', async () => {
    const [p0, p1] = await listen(2);
    const members = membersOf(open.planes);
    const first = p0.allreduce(reductionFor(members, 0, 'a'), new Float32Array(10));
    await assert.rejects(p0.allreduce(reductionFor(members, 0, 'b'), new Float32Array(10)), (err: AllreduceError) =>
      err instanceof AllreduceError && err.phase === 'start' && /'a' is still running/.test(err.message));
    await p1.allreduce(reductionFor(members, 1, 'a'), new Float32Array(10));
    await first;
    await assert.rejects(p0.allreduce(reductionFor(members, 2, 'c'), new Float32Array(1)), /expected a rank in \[0, 1\], got 2/);
    await assert.rejects(p0.allreduce({ key: 'd', members: [members[0], { ...members[1], id: 'm0' }], rank: 0, timeoutMs: 100 }, new Float32Array(1)),
      /expected unique member ids/);
    await assert.rejects(p0.allreduce({ key: 'e', members: [{ ...members[0], role: 'boss' as 'observer' }, members[1]], rank: 0, timeoutMs: 100 }, new Float32Array(1)),
      /expected role 'contributor' or 'observer', member 'm0' has "boss"/);
  });

  it('fails every member at once when a member disagrees on the vector length', async () => {
    await listen(3);
    const data = [new Float32Array(100), new Float32Array(101), new Float32Array(100)];
    const t0 = performance.now();
    const out = assertAllFailed(await runAll(open.planes, 'mismatch', data, membersOf(open.planes), 60_000));
    assert.ok(performance.now() - t0 < 30_000, 'not at the timeout');
    const said = out.filter((o) => o.phase === 'handshake' && /expected 10[01] floats, 'm\d' reduces 10[01]/.test(o.message));
    assert.ok(said.length >= 1, `expected a handshake error naming the lengths, got ${out.map(String).join(' | ')}`);
  });

  it('fails every member at once when a member has another members list', async () => {
    await listen(3);
    const members = membersOf(open.planes);
    const swapped = [members[1], members[0], members[2]]; // member 2 folds in another order
    const floats = 3 * MIN_SEGMENT_FLOATS; // one segment per contributor
    const settled = await Promise.allSettled(open.planes.map((p, r) => (r === 2
      ? p.allreduce({ key: 'lists', members: swapped, rank: 2, timeoutMs: 60_000 }, new Float32Array(floats))
      : p.allreduce(reductionFor(members, r, 'lists', 60_000), new Float32Array(floats)))));
    const out = settled.map((s) => (s.status === 'rejected' ? s.reason as AllreduceError : assert.fail('every member should fail')));
    assert.ok(out.every((e) => e instanceof AllreduceError));
    const said = out.filter((o) => /the members lists differ: expected \[m\d, m\d, m2\], 'm\d' has \[m\d, m\d, m2\]/.test(o.message));
    assert.ok(said.length >= 1, `expected an error naming both lists, got ${out.map(String).join(' | ')}`);
  });

  it('fails with NonFiniteValueError at the owner a member sends NaN to', async () => {
    await listen(3);
    const floats = 3 * MIN_SEGMENT_FLOATS; // one segment per contributor
    const data = open.planes.map((_, m) => inputOf(m, floats));
    data[1][floats - 500] = NaN; // segment 2: member 1 sends it to its owner, member 2, in the reduce-scatter
    const out = assertAllFailed(await runAll(open.planes, 'nan', data, membersOf(open.planes), 60_000));
    const at2 = out[2];
    assert.ok(at2.cause instanceof NonFiniteValueError, `expected NonFiniteValueError at member 2, got ${String(at2.cause)}`);
    assert.equal(at2.peer, 'm1');
    assert.equal(at2.phase, 'reduce-scatter');
    assert.equal(at2.key, 'nan');
  });

  it('times out naming the member that never shows up', async () => {
    await listen(3);
    const members = membersOf(open.planes);
    const settled = await Promise.allSettled([0, 1].map((r) => open.planes[r].allreduce(reductionFor(members, r, 'absent', 300), new Float32Array(64))));
    const errors = settled.map((s) => (s.status === 'rejected' ? s.reason as AllreduceError : assert.fail('should fail')));
    for (const err of errors) assert.ok(err instanceof AllreduceError, String(err));
    // Whichever times out first closes its connections, which fails the other one at once.
    assert.ok(errors.some((e) => /not done within 300 ms \(waiting for 'm2'\)/.test(e.message) && e.peer === 'm2'), errors.map(String).join(' | '));
  });

  it('fails a running reduction with phase \'closed\' when its plane closes', async () => {
    const [p0] = await listen(2);
    const running = p0.allreduce(reductionFor(membersOf(open.planes), 0, 'closing', 60_000), new Float32Array(10));
    running.catch(() => undefined);
    await p0.close();
    await assert.rejects(running, (err: AllreduceError) => err instanceof AllreduceError && err.phase === 'closed');
  });

  describe('against a hand-written peer', () => {
    let fakeServer: Awaited<ReturnType<typeof startTensorChannelServer>> | undefined;
    let fakeOut: TensorChannel | undefined;
    afterEach(async () => {
      await fakeOut?.close();
      await fakeServer?.close();
    });

    /** A real member (rank 0) and a fake contributor (rank 1) that has done the handshake; returns the fake's sending channel. */
    async function handshake(key: string, floats: number): Promise<{ result: Promise<AllreduceStats>; toReal: TensorChannel }> {
      const [p0] = await listen(1);
      fakeServer = await startTensorChannelServer();
      const members: AllreduceMember[] = [{ id: 'real', address: p0.address }, { id: 'fake', address: `127.0.0.1:${fakeServer.port}` }];
      const result = p0.allreduce(reductionFor(members, 0, key), new Float32Array(floats));
      result.catch(() => undefined);
      // The real member connects to the fake to receive from it, says hello and ready; the fake does the same.
      const toReal = await fakeServer.accept();
      const hello = (await toReal.receive()).meta;
      const ready = (await toReal.receive()).meta;
      assert.equal(hello.type, 'allreduce-hello');
      assert.deepEqual({ ...ready }, { type: 'allreduce-ready', key, floats, members: 'real, fake' });
      fakeOut = await connectTensorChannel('127.0.0.1', Number(p0.address.split(':')[1]));
      await fakeOut.send([], { type: 'allreduce-hello', from: 'fake', address: members[1].address, to: 'real' });
      await fakeOut.send([], ready);
      return { result, toReal };
    }

    it('fails naming the frame it expected when a segment has the wrong length', async () => {
      const floats = 2 * MIN_SEGMENT_FLOATS; // one segment per member
      const { result, toReal } = await handshake('short', floats);
      const name = `reduce-scatter segment 0/2 of 'short' (${floats} floats, 2 members)`;
      await toReal.send([{ name, dtype: 'float32', shape: [MIN_SEGMENT_FLOATS - 1], data: new Float32Array(MIN_SEGMENT_FLOATS - 1) }]);
      await assert.rejects(result, (err: AllreduceError) => {
        assert.ok(err instanceof AllreduceError, String(err));
        assert.equal(err.message.includes(`expected frame '${name}' of ${MIN_SEGMENT_FLOATS} float32, got '${name}' of shape [${MIN_SEGMENT_FLOATS - 1}]`), true, err.message);
        assert.equal(err.peer, 'fake');
        assert.equal(err.phase, 'reduce-scatter');
        return true;
      });
    });

    it('refuses a frame of another reduction before reading its data', async () => {
      const floats = 2 * MIN_SEGMENT_FLOATS; // one segment per member
      const { result, toReal } = await handshake('this-one', floats);
      const name = `reduce-scatter segment 0/2 of 'other-one' (${floats} floats, 2 members)`;
      await toReal.send([{ name, dtype: 'float32', shape: [MIN_SEGMENT_FLOATS], data: new Float32Array(MIN_SEGMENT_FLOATS) }]).catch(() => undefined);
      await assert.rejects(result, /expected frame 'reduce-scatter segment 0\/2 of 'this-one'.*got 'reduce-scatter segment 0\/2 of 'other-one'.*the members disagree/);
    });
  });
});
