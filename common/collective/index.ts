/**
 * The gradient data plane: an allreduce among a step's members over pooled TensorChannel connections,
 * instead of a parameter server. Direct reduce-scatter (each contributor's slice of a segment goes
 * straight to the segment's owner, which adds them by the fixed summation tree over micro-batches, bit
 * for bit the sum the single-process trainer computes), then direct allgather (each owner sends its reduced segment to every member,
 * observers included). Every member ends with identical bytes, which is what keeps the replicas identical.
 */
export { DataPlane } from './data-plane';
export { RecycledBuffers } from './recycled-buffers';
export { addFloatsInto, isDirect, MIN_SEGMENT_FLOATS, segmentCount } from './segment-plan';
export { contiguousRuns, isTreeNode, type MicroBatchRun, nodePrefix, parentNode, splitPoint, TreeSum } from './summation-tree';
export type { DataPlaneOptions } from './data-plane';
export { AllreduceError, ALLREDUCE_PHASES } from './errors';
export type { AllreducePhase } from './errors';
export { COORDINATOR_MEMBER_ID, MEMBER_ROLES } from './types';
export type { MemberRole, AllreduceCompression, AllreduceMember, AllreduceRequest, AllreduceStats } from './types';
export { decodeFp16, decodeFp16Scalar, encodeFp16, encodeFp16Scalar, FP16_MAX } from './fp16';
export { allreduceCompression } from './half-frames';
