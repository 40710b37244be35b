import { type MicroBatchRun, TreeSum } from './summation-tree';
import { MEMBER_ROLES, AllreduceCompression, AllreduceMember } from './types';

/**
 * Floats a segment must hold before the vector is split into more segments (256 KiB). A frame's fixed cost
 * (header, a writev, the receive bookkeeping, waking a process) was about 0.14 ms in bench/exchange.ts on
 * the 2-core machine, as much as moving about 32 K floats (4.4 ns each), so a smaller segment pays more for
 * its frames than for its bytes (figures in docs/distributed-design.md).
 */
export const MIN_SEGMENT_FLOATS = 65_536;

/**
 * Segments a vector of `floats` is split into among `contributors`: one per contributor for a large
 * vector (its traffic spread over every link), fewer for a small one, down to one (gather to one owner,
 * then broadcast): as NCCL and Horovod pick a tree or a single root for small messages. Each segment then
 * holds at least MIN_SEGMENT_FLOATS (all of them when there is one), and frames per reduction fall from
 * 2 C (C - 1) to about 2 S C.
 */
export function segmentCount(floats: number, contributors: number): number {
  return Math.max(1, Math.min(contributors, Math.floor(floats / MIN_SEGMENT_FLOATS)));
}

/** Most contributors a direct reduction has: each sends its parts to every member, C x (M - 1) frames in all. */
export const DIRECT_MAX_CONTRIBUTORS = 4;
/** Most floats a direct reduction's vector has (64 KiB): well below a frame's fixed cost in bytes (MIN_SEGMENT_FLOATS). */
export const DIRECT_MAX_FLOATS = 16_384;

/**
 * Whether a reduction of `floats` among `contributors` is direct: every contributor sends its parts to every
 * other member, and each member adds them all by the summation tree itself. The vector is small enough
 * that a frame costs its fixed cost, not its bytes, so the hop saved (the gather's owner adding and then
 * sending the sum on) is worth the frames added; for a few contributors only, since frames grow with C x M.
 * The last member whose input arrives has every other part then, and holds the sum without waiting for any
 * frame; the others and the observers wait one hop, not two. (NCCL and Gloo likewise pick a one-hop
 * algorithm for small messages among few ranks.)
 */
export function isDirect(floats: number, contributors: number): boolean {
  return contributors > 1 && contributors <= DIRECT_MAX_CONTRIBUTORS && floats <= DIRECT_MAX_FLOATS;
}

/**
 * How a reduction splits its vector and who talks to whom. The first S contributors (in member order; S
 * from `segmentCount`) own S contiguous segments; every contributor sends its parts' slices of segment j
 * straight to owner j (reduce-scatter), which adds every part of its segment by the summation tree, then
 * sends the reduced segment straight to every other member (allgather). The other contributors own
 * nothing: they send only to the owners and receive only from them. Observers own nothing and send
 * nothing: they only receive the allgather from the owners. Two members that exchange no frame open no
 * connection. A direct reduction (`isDirect`) has one segment that every member adds itself: a contributor
 * sends its parts to every other member, and nobody sends a sum.
 */
export interface ReductionPlan {
  /** Floats in the reduced vector (one part). */
  readonly floats: number;
  /** Micro-batches of the summation tree the parts cover. */
  readonly leaves: number;
  /** Member indices of the contributors, in member order: contributor j < `segments` owns segment j. */
  readonly contributors: readonly number[];
  /** Segments the vector is split into (`segmentCount`): owned by the first this many contributors. */
  readonly segments: number;
  /** The tree nodes each contributor brings, by contributor index, ascending. */
  readonly parts: readonly (readonly MicroBatchRun[])[];
  /** This member's contributor index (whose parts it brings), or -1 for an observer. */
  readonly contributor: number;
  /**
   * The segment this member owns (its contributor index), or -1 for an observer or a contributor owning none;
   * 0 for every member of a direct reduction, since each adds the whole vector itself.
   */
  readonly own: number;
  /** Every member adds every part itself (`isDirect`): no member sends a sum. */
  readonly direct: boolean;
  /** Member indices this member receives frames from: every other contributor for an owner (and every member of a direct reduction), the other owners otherwise. */
  readonly senders: readonly number[];
  /** Member indices this member sends frames to: every other member for an owner (and every contributor of a direct reduction), the other owners for another contributor, none for an observer. */
  readonly receivers: readonly number[];
  /**
   * `ids, roles and parts in member order` (the segment count where it is below the contributors', and the
   * compression): what every member must agree on, compared in the handshake.
   */
  readonly membersText: string;
}

function runsText(runs: readonly MicroBatchRun[]): string {
  return runs.map((r) => `[${r.start}, ${r.end})`).join(' ');
}

/** Every contributor's parts, or why they do not cover [0, leaves) with nodes of the summation tree. */
function planParts(members: readonly AllreduceMember[], contributors: readonly number[]): { parts: MicroBatchRun[][]; leaves: number } | string {
  const listed = contributors.filter((i) => members[i].parts !== undefined);
  if (listed.length === 0) return { parts: contributors.map((_, j) => [{ start: j, end: j + 1 }]), leaves: contributors.length };
  if (listed.length !== contributors.length) {
    const bare = contributors.find((i) => members[i].parts === undefined) as number;
    return `expected parts for every contributor or for none, '${members[bare].id}' has none`;
  }
  const parts = contributors.map((i) => [...(members[i].parts as MicroBatchRun[])]);
  const empty = contributors.find((_, j) => parts[j].length === 0);
  if (empty !== undefined) return `expected at least one part per contributor, '${members[empty].id}' has none`;
  const leaves = Math.max(...parts.flat().map((r) => r.end));
  const check = new TreeSum<null>(leaves, () => null);
  try {
    for (const r of parts.flat()) check.put(r, null);
    check.result();
  } catch (err) {
    return `the contributors' parts must cover the micro-batches exactly with nodes of the summation tree: ${(err as Error).message}`;
  }
  return { parts, leaves };
}

/** The segment member `member` owns: its contributor index when that is below the segment count, else -1. */
export function segmentOwnedBy(plan: Pick<ReductionPlan, 'contributors' | 'segments'>, member: number): number {
  const k = plan.contributors.indexOf(member);
  return k >= 0 && k < plan.segments ? k : -1;
}

/**
 * The plan of `rank`'s part in a reduction of `inputFloats` (the member's input: one vector per part it
 * brings, or one for an observer) among `members`, or why there is none.
 */
export function planReduction(members: readonly AllreduceMember[], rank: number, inputFloats: number, compression?: AllreduceCompression): ReductionPlan | string {
  const bad = members.find((m) => m.role !== undefined && !MEMBER_ROLES.includes(m.role));
  if (bad) return `expected role ${MEMBER_ROLES.map((r) => `'${r}'`).join(' or ')}, member '${bad.id}' has ${JSON.stringify(bad.role)}`;
  const contributors = members.flatMap((m, i) => (m.role === 'observer' ? [] : [i]));
  if (contributors.length === 0) return `expected at least one contributor, got ${members.length} observer(s)`;
  const tree = planParts(members, contributors);
  if (typeof tree === 'string') return tree;
  const contributor = contributors.indexOf(rank);
  const vectors = contributor < 0 ? 1 : tree.parts[contributor].length;
  if (inputFloats % vectors !== 0) return `expected ${vectors} input vectors of equal length back to back, got ${inputFloats} floats`;
  const floats = inputFloats / vectors;
  const segments = segmentCount(floats, contributors.length);
  const direct = segments === 1 && isDirect(floats, contributors.length);
  const owners = direct ? contributors : contributors.slice(0, segments);
  const own = direct ? 0 : segmentOwnedBy({ contributors, segments }, rank);
  const others = (among: readonly number[]): number[] => among.filter((i) => i !== rank);
  const sendsSums = own >= 0 && !direct;
  return {
    floats,
    leaves: tree.leaves,
    contributors,
    segments,
    parts: tree.parts,
    contributor,
    own,
    direct,
    senders: others(own >= 0 ? contributors : owners),
    receivers: sendsSums || (direct && contributor >= 0) ? others(members.map((_, i) => i)) : contributor >= 0 ? others(owners) : [],
    membersText: members.map((m, i) => {
      const j = contributors.indexOf(i);
      if (j < 0) return `${m.id} (observer)`;
      return m.parts === undefined ? m.id : `${m.id} ${runsText(tree.parts[j])}`;
    }).join(', ') + (direct ? '; direct' : segments < contributors.length ? `; ${segments} segment(s)` : '') +
      (compression ? `; ${compression.type} prescaled by ${compression.prescale}` : ''),
  };
}

/** Floats per segment: contiguous slices of ceil(n / S), so the last ones may be short or empty (n < S). */
export function segmentLength(floats: number, segments: number): number {
  return Math.ceil(floats / segments);
}

/** Segment `j`'s [start, end) element range within a vector of `floats` split into `segments`. */
export function segmentBounds(j: number, floats: number, segments: number): [number, number] {
  const len = segmentLength(floats, segments);
  return [Math.min(floats, j * len), Math.min(floats, (j + 1) * len)];
}

// Unrolled by 4 in a small function of its own: V8 does not vectorise, and this halves the loop
// overhead (2.3 ms -> 1.35 ms for 2.16 M floats, bench/exchange.ts).
/** sum += g, element-wise over sum.length (g must be at least as long). */
export function addFloatsInto(sum: Float32Array, g: Float32Array): void {
  const n = sum.length;
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    sum[i] += g[i];
    sum[i + 1] += g[i + 1];
    sum[i + 2] += g[i + 2];
    sum[i + 3] += g[i + 3];
  }
  for (; i < n; i++) sum[i] += g[i];
}
