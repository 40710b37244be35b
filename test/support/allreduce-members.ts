/** Members of an allreduce among DataPlanes of one process, their inputs, and checks of what each ended with. */
import assert from 'node:assert/strict';
import { AllreduceError, AllreduceMember, AllreduceRequest, AllreduceStats, DataPlane } from '../../common/collective';

/** Deterministic, distinct per member, of mixed sign and magnitude (1e-3 .. 1e5) so float32 rounding shows. */
export function inputOf(member: number, floats: number, round = 0): Float32Array {
  const a = new Float32Array(floats);
  for (let i = 0; i < floats; i++) a[i] = Math.sin(i * 0.37 + member * 1.3 + round) * 10 ** (((i * 7 + member * 3) % 9) - 3);
  return a;
}

/** A sequential float32 left fold in member order (what the collective computed before the tree). */
export function leftFold(parts: Float32Array[]): Float32Array {
  const acc = Float32Array.from(parts[0]);
  for (const p of parts.slice(1)) for (let i = 0; i < acc.length; i++) acc[i] += p[i];
  return acc;
}

/**
 * The single-process trainer's sum, written out independently of TreeSum: the pairwise tree over the
 * leaves, the left half ceil(n / 2) long, in float32.
 */
export function treeSum(leaves: Float32Array[]): Float32Array {
  if (leaves.length === 1) return Float32Array.from(leaves[0]);
  const mid = Math.ceil(leaves.length / 2);
  const left = treeSum(leaves.slice(0, mid));
  const right = treeSum(leaves.slice(mid));
  for (let i = 0; i < left.length; i++) left[i] += right[i];
  return left;
}

/** The bytes of a float view. */
export const bytesOf = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Every member holds exactly the bytes of `expected`. */
export function assertAllEqual(results: Float32Array[], expected: Float32Array): void {
  results.forEach((r, m) => {
    if (bytesOf(r).equals(bytesOf(expected))) return;
    const i = r.findIndex((x, j) => !Object.is(x, expected[j]));
    assert.fail(`member ${m}: element ${i} is ${r[i]}, the summation tree's sum is ${expected[i]}`);
  });
}

/** m0, m1, … at the planes' addresses; the given ranks observe. */
export function membersOf(planes: DataPlane[], observers: number[] = []): AllreduceMember[] {
  return planes.map((p, i) => ({ id: `m${i}`, address: p.address, ...(observers.includes(i) ? { role: 'observer' as const } : {}) }));
}

/** Member `rank`'s request for reduction `key`. */
export function reductionFor(members: AllreduceMember[], rank: number, key: string, timeoutMs = 10_000): AllreduceRequest {
  return { key, members, rank, timeoutMs };
}

/** Settles every member's allreduce; returns each one's stats or error. */
export async function runAll(planes: DataPlane[], key: string, data: Float32Array[], members = membersOf(planes), timeoutMs = 10_000): Promise<Array<AllreduceStats | AllreduceError>> {
  const settled = await Promise.allSettled(planes.map((p, r) => p.allreduce(reductionFor(members, r, key, timeoutMs), data[r])));
  return settled.map((s) => {
    if (s.status === 'fulfilled') return s.value;
    assert.ok(s.reason instanceof AllreduceError, `expected AllreduceError, got ${String(s.reason)}`);
    return s.reason;
  });
}

/** Every member succeeded: their stats. */
export function assertAllSucceeded(out: Array<AllreduceStats | AllreduceError>): AllreduceStats[] {
  out.forEach((o, m) => assert.ok(!(o instanceof AllreduceError), `member ${m}: ${String(o)}`));
  return out as AllreduceStats[];
}

/** Every member failed: their errors. */
export function assertAllFailed(out: Array<AllreduceStats | AllreduceError>): AllreduceError[] {
  out.forEach((o, m) => assert.ok(o instanceof AllreduceError, `member ${m} should fail, got ${JSON.stringify(o)}`));
  return out as AllreduceError[];
}

/** Resolves once `condition` holds, checking on every turn of the event loop. */
export async function until(condition: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!condition()) {
    if (Date.now() - t0 > limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The DataPlanes of one test, on 127.0.0.1: `listen(n)` opens n (they replace the list); an afterEach closes them. */
export class TestPlanes {
  planes: DataPlane[] = [];

  constructor() {
    afterEach(async () => {
      await Promise.all(this.planes.map((p) => p.close()));
      this.planes = [];
    });
  }

  async listen(n: number): Promise<DataPlane[]> {
    this.planes = await Promise.all(Array.from({ length: n }, () => DataPlane.listen()));
    return this.planes;
  }
}

/**
 * Each member's input for a split of `micro` (the micro-batches' vectors): a contributor's parts, each the
 * tree's sum of its run, back to back; an observer's one vector of garbage (7s), which the sum overwrites.
 */
export function splitInputs(members: readonly AllreduceMember[], micro: readonly Float32Array[], floats: number): Float32Array[] {
  return members.map((m) => {
    const input = new Float32Array((m.parts?.length ?? 1) * floats).fill(7);
    m.parts?.forEach(({ start, end }, i) => input.set(treeSum(micro.slice(start, end)), i * floats));
    return input;
  });
}
