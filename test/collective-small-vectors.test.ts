/**
 * The collective's segment count follows the vector's size (`segmentCount`): a small vector among many
 * contributors is split among a few owners, down to one (gather to one owner, then broadcast), with the
 * summation tree's bytes at every member still, connections only between members that exchange frames,
 * and a member that leaves mid-reduction still failing everyone's attempt at once. Among a few contributors,
 * a small vector is reduced directly: each contributor sends its parts to every member, and each member
 * adds them by the tree itself.
 */
import assert from 'node:assert/strict';
import { AllreduceError, AllreduceMember, DataPlane, decodeFp16, encodeFp16, MIN_SEGMENT_FLOATS, segmentCount } from '../common/collective';
import { DIRECT_MAX_CONTRIBUTORS, DIRECT_MAX_FLOATS, planReduction, type ReductionPlan } from '../common/collective/segment-plan';
import { assertAllEqual, assertAllSucceeded, inputOf, membersOf, reductionFor, runAll, splitInputs, treeSum, until, TestPlanes } from './support/allreduce-members';

/** The MobileNet gradient's length, which 2-4 workers must keep splitting one segment each. */
const MOBILENET_FLOATS = 2_162_880;

/** `values` rounded to IEEE halves (nearest even) and read back. */
function toHalfAndBack(values: Float32Array): Float32Array {
  const halves = new Uint16Array(values.length);
  encodeFp16(values, halves);
  const out = new Float32Array(values.length);
  decodeFp16(halves, out);
  return out;
}

function plan(members: AllreduceMember[], rank: number, floats: number): ReductionPlan {
  const p = planReduction(members, rank, floats);
  if (typeof p === 'string') assert.fail(p);
  return p;
}

/** An observer at rank 0 and `c` contributors behind it, at made-up addresses (planning opens nothing). */
function observed(c: number): AllreduceMember[] {
  return [{ id: 'coordinator', address: 'h:1', role: 'observer' }, ...Array.from({ length: c }, (_, k) => ({ id: `w${k}`, address: `h:${k + 2}` }))];
}

describe('collective segment plan by vector size', () => {
  it('gives a small vector among 64 contributors one segment, owned by the first contributor', () => {
    const members = observed(64);
    const owner = plan(members, 1, 650);
    assert.equal(owner.segments, 1);
    assert.equal(owner.own, 0);
    assert.deepEqual(owner.senders, members.map((_, i) => i).slice(2), 'the owner receives every other contributor\'s part');
    assert.deepEqual(owner.receivers, [0, ...members.map((_, i) => i).slice(2)], 'and sends the sum to every other member');
    const other = plan(members, 40, 650);
    assert.deepEqual([other.own, other.contributor, other.senders, other.receivers], [-1, 39, [1], [1]]);
    const observer = plan(members, 0, 650);
    assert.deepEqual([observer.own, observer.senders, observer.receivers], [-1, [1], []]);
    assert.match(owner.membersText, /^coordinator \(observer\), w0, w1, .*, w63; 1 segment\(s\)$/);
    for (const p of [other, observer]) assert.equal(p.membersText, owner.membersText);
  });

  it('gives each segment at least MIN_SEGMENT_FLOATS, owned by the first contributors in member order', () => {
    const members = [{ id: 'a', address: 'h:1' }, { id: 'obs', address: 'h:2', role: 'observer' as const }, ...observed(7).slice(1)];
    const floats = 3 * MIN_SEGMENT_FLOATS + MIN_SEGMENT_FLOATS / 2;
    const plans = members.map((_, rank) => plan(members, rank, floats));
    assert.deepEqual(plans.map((p) => p.segments), members.map(() => 3));
    // Contributors a, w0, w1 (members 0, 2, 3) own segments 0, 1, 2; w2..w6 and the observer own none.
    assert.deepEqual(plans.map((p) => p.own), [0, -1, 1, 2, -1, -1, -1, -1, -1]);
    assert.deepEqual(plans[4].senders, [0, 2, 3]);
    assert.deepEqual(plans[4].receivers, [0, 2, 3]);
    assert.deepEqual(plans[1].senders, [0, 2, 3]);
    assert.deepEqual(plans[2].senders, [0, 3, 4, 5, 6, 7, 8]);
    assert.match(plans[0].membersText, /; 3 segment\(s\)$/);
  });

  it('keeps one segment per contributor for the MobileNet gradient among 2 to 4 workers, and for any vector of C x MIN floats', () => {
    for (const c of [2, 3, 4]) {
      assert.equal(segmentCount(MOBILENET_FLOATS, c), c);
      const p = plan(observed(c), 0, MOBILENET_FLOATS);
      assert.equal(p.segments, c);
      assert.doesNotMatch(p.membersText, /segment/, 'the handshake text is what it was with one segment per contributor');
    }
    assert.deepEqual([1, 2, 63, 64].map((c) => segmentCount(c * MIN_SEGMENT_FLOATS, c)), [1, 2, 63, 64]);
    assert.deepEqual([0, 1, MIN_SEGMENT_FLOATS - 1, 2 * MIN_SEGMENT_FLOATS - 1].map((n) => segmentCount(n, 64)), [1, 1, 1, 1]);
  });
});

describe('collective allreduce of small vectors (one process)', () => {
  const open = new TestPlanes();
  const listen = (n: number): Promise<DataPlane[]> => open.listen(n);

  // 8 micro-batches (tree [0,4) = [0,2) + [2,4), [4,8) = [4,6) + [6,8)) split unevenly among 5 contributors,
  // an observer between them: with 1 segment (owner w0) and with 2 (owners w0 and w1).
  const split: Array<Array<[number, number]>> = [[[0, 1]], [[1, 2], [2, 4]], [[4, 6]], [[6, 7]], [[7, 8]]];
  for (const floats of [1001, 2 * MIN_SEGMENT_FLOATS + 5]) {
    const segments = segmentCount(floats, split.length);
    it(`gives every member the summation tree's bytes for an unaligned split in ${segments} segment(s), over links to the owners only`, async () => {
      await listen(split.length + 1);
      const micro = Array.from({ length: 8 }, (_, m) => inputOf(m, floats));
      const contributors: AllreduceMember[] = split.map((p, k) => ({ id: `w${k}`, address: open.planes[k < 2 ? k : k + 1].address, parts: p.map(([start, end]) => ({ start, end })) }));
      const members = [contributors[0], contributors[1], { id: 'observer', address: open.planes[2].address, role: 'observer' as const }, ...contributors.slice(2)];
      const inputs = splitInputs(members, micro, floats);
      for (let round = 0; round < 2; round++) {
        const data = inputs.map((x) => Float32Array.from(x));
        const stats = assertAllSucceeded(await runAll(open.planes, `small-${floats}-${round}`, data, members));
        assertAllEqual(data.map((d) => d.subarray(0, floats)), treeSum(micro));
        // A contributor that owns no segment sends only its parts, whole; the observer sends nothing.
        assert.deepEqual([3, 4, 5].map((r) => stats[r].bytesSent), [3, 4, 5].map((r) => inputs[r].byteLength));
        assert.equal(stats[2].bytesSent, 0);
        assert.equal(stats[2].bytesReceived, floats * 4);
      }
      // Each owner receives from every other contributor (4); everyone else from the owners only, once.
      assert.deepEqual(open.planes.map((p) => p.connectionsOpened), segments === 1 ? [4, 1, 1, 1, 1, 1] : [4, 4, 2, 2, 2, 2]);
    });
  }

  it('rounds the owner\'s sum once with fp16 compression: every member, the observer included, holds the same bytes', async () => {
    await listen(6);
    const floats = 999;
    const members = membersOf(open.planes, [3]);
    const inputs = open.planes.map((_, m) => inputOf(m, floats).map((x) => x / 1e3));
    const data = inputs.map((x) => Float32Array.from(x));
    const settled = await Promise.allSettled(open.planes.map((p, r) => p.allreduce({ ...reductionFor(members, r, 'half'), compression: { type: 'fp16', prescale: 1 } }, data[r])));
    settled.forEach((s, r) => assert.equal(s.status, 'fulfilled', `member ${r}: ${String((s as PromiseRejectedResult).reason)}`));
    // The parts rounded to halves, added by the tree in float32, the sum rounded to a half once.
    assertAllEqual(data, toHalfAndBack(treeSum(inputs.filter((_, m) => m !== 3).map(toHalfAndBack))));
  });

  // m0 observes; m1..m6 contribute, m1 owning the one segment; m6 is held back, so the reduction is under way
  // but cannot finish when a member's plane closes.
  for (const { who, what } of [{ who: 4, what: 'a contributor that owns no segment' }, { who: 1, what: 'the owner' }]) {
    it(`fails every member's attempt at once, not at the timeout, when ${what} leaves mid-reduction`, async () => {
      await listen(7);
      const members = membersOf(open.planes, [0]);
      const floats = 500;
      const data = open.planes.map((_, m) => inputOf(m, floats));
      const started = open.planes.slice(0, 6).map((p, r) => p.allreduce(reductionFor(members, r, 'leaving', 120_000), data[r]));
      for (const s of started) s.catch(() => undefined);
      // Every started contributor but the owner has its one link, to the owner; the owner one to each started one.
      await until(() => [2, 3, 4, 5].every((r) => open.planes[r].connectionsOpened === 1) && open.planes[1].connectionsOpened === 5, 'links to the owner');
      await open.planes[who].close();
      const late = open.planes[6].allreduce(reductionFor(members, 6, 'leaving', 120_000), data[6]);
      const out = await Promise.allSettled([...started, late]);
      out.forEach((o, r) => {
        assert.equal(o.status, 'rejected', `member ${r} should fail`);
        const err = (o as PromiseRejectedResult).reason as AllreduceError;
        assert.ok(err instanceof AllreduceError, String(err));
        assert.doesNotMatch(err.message, /not done within/, `member ${r}`);
      });
      assert.equal(((out[who] as PromiseRejectedResult).reason as AllreduceError).phase, 'closed');
    });
  }
});

describe('collective direct reduction (a small vector among a few contributors)', () => {
  const open = new TestPlanes();

  it('is planned for 2 to 4 contributors and a vector of at most DIRECT_MAX_FLOATS: each contributor sends to every member, nobody sends a sum', () => {
    for (let c = 2; c <= DIRECT_MAX_CONTRIBUTORS; c++) {
      const members = observed(c);
      const all = members.map((_, i) => i);
      for (const [rank, p] of members.map((_, rank) => [rank, plan(members, rank, DIRECT_MAX_FLOATS)] as const)) {
        assert.equal(p.direct, true, `${c} contributors, member ${rank}`);
        assert.equal(p.own, 0, 'every member adds the one segment itself');
        assert.deepEqual(p.senders, all.slice(1).filter((i) => i !== rank), 'from every other contributor');
        assert.deepEqual(p.receivers, rank === 0 ? [] : all.filter((i) => i !== rank), 'to every other member; the observer sends nothing');
        assert.match(p.membersText, /; direct$/, 'members of another build (one owner) fail the handshake, naming both plans');
      }
    }
    assert.equal(plan(observed(DIRECT_MAX_CONTRIBUTORS + 1), 1, 650).direct, false, 'more contributors: one owner');
    assert.equal(plan(observed(2), 1, DIRECT_MAX_FLOATS + 1).direct, false, 'a larger vector: one owner');
    assert.equal(plan(observed(1), 1, 650).direct, false, 'one contributor: nothing to exchange');
  });

  // 8 micro-batches split 1 + 3 + 4 among 3 contributors (tree nodes [0,1) | [1,2) [2,4) | [4,8)), an observer first.
  const split: Array<Array<[number, number]>> = [[[0, 1]], [[1, 2], [2, 4]], [[4, 8]]];
  const membersAt = (planes: DataPlane[]): AllreduceMember[] => [
    { id: 'observer', address: planes[0].address, role: 'observer' },
    ...split.map((p, k) => ({ id: `w${k}`, address: planes[k + 1].address, parts: p.map(([start, end]) => ({ start, end })) })),
  ];

  it('gives every member, the observer included, the summation tree\'s bytes for an unaligned split; each part goes once to each member', async () => {
    await open.listen(4);
    const floats = 1001;
    const micro = Array.from({ length: 8 }, (_, m) => inputOf(m, floats));
    const members = membersAt(open.planes);
    const inputs = splitInputs(members, micro, floats);
    for (let round = 0; round < 2; round++) {
      const data = inputs.map((x) => Float32Array.from(x));
      const stats = assertAllSucceeded(await runAll(open.planes, `direct-${round}`, data, members));
      assertAllEqual(data.map((d) => d.subarray(0, floats)), treeSum(micro));
      // Each contributor sends its parts to the 3 other members; each member receives every part but its own.
      assert.deepEqual(stats.map((x) => x.bytesSent), [0, 3, 6, 3].map((n) => n * floats * 4));
      assert.deepEqual(stats.map((x) => x.bytesReceived), [4, 3, 2, 3].map((n) => n * floats * 4));
    }
    // A member opens a link from every contributor but itself, once: the second round reuses them.
    assert.deepEqual(open.planes.map((p) => p.connectionsOpened), [3, 2, 2, 2]);
  });

  it('rounds with fp16 compression at every member alike, each part prescaled once: the same bytes everywhere', async () => {
    await open.listen(4);
    const floats = 999;
    const prescale = 8; // a power of two: dividing it out again is exact, so the expected bytes are known
    const members = membersOf(open.planes, [0]);
    const inputs = open.planes.map((_, m) => inputOf(m, floats).map((x) => x / 1e3));
    const data = inputs.map((x) => Float32Array.from(x));
    const settled = await Promise.allSettled(open.planes.map((p, r) => p.allreduce({ ...reductionFor(members, r, 'direct-half'), compression: { type: 'fp16', prescale } }, data[r])));
    settled.forEach((x, r) => assert.equal(x.status, 'fulfilled', `member ${r}: ${String((x as PromiseRejectedResult).reason)}`));
    const sent = inputs.slice(1).map((x) => toHalfAndBack(x.map((v) => v * prescale)));
    assertAllEqual(data, toHalfAndBack(treeSum(sent)).map((v) => v / prescale));
  });

  it('fails every member\'s attempt at once, not at the timeout, when a contributor leaves mid-reduction', async () => {
    await open.listen(4);
    const members = membersOf(open.planes, [0]);
    const floats = 500;
    const data = open.planes.map((_, m) => inputOf(m, floats));
    // m3 is held back, so the reduction is under way but cannot finish when m2's plane closes.
    const started = open.planes.slice(0, 3).map((p, r) => p.allreduce(reductionFor(members, r, 'direct-leaving', 120_000), data[r]));
    for (const x of started) x.catch(() => undefined);
    // Each started member connects to every contributor it receives from, m3's plane included (it listens).
    await until(() => [3, 2, 2].every((n, r) => open.planes[r].connectionsOpened === n), 'the started members\' links');
    await open.planes[2].close();
    const late = open.planes[3].allreduce(reductionFor(members, 3, 'direct-leaving', 120_000), data[3]);
    const out = await Promise.allSettled([...started, late]);
    out.forEach((o, r) => {
      assert.equal(o.status, 'rejected', `member ${r} should fail`);
      const err = (o as PromiseRejectedResult).reason as AllreduceError;
      assert.ok(err instanceof AllreduceError, String(err));
      assert.doesNotMatch(err.message, /not done within/, `member ${r}`);
    });
  });
});
