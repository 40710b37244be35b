/**
 * The gradient data plane: an allreduce among a step's members over pooled TensorChannel connections,
 * instead of a parameter server. Direct reduce-scatter (each contributor's slice of a segment goes
 * straight to the segment's owner, which folds the slices in member order, bit for bit the sum a single
 * process would compute), then direct allgather (each owner sends its reduced segment to every member,
 * observers included). Every member ends with identical bytes, which is what keeps the replicas identical.
 */
export { DataPlane } from './data-plane';
export { addFloatsInto } from './segment-plan';
export type { DataPlaneOptions } from './data-plane';
export { RingError, RING_PHASES } from './errors';
export type { RingPhase } from './errors';
export { MEMBER_ROLES } from './types';
export type { MemberRole, RingMember, RingReduction, RingStats } from './types';
