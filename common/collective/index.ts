/**
 * The gradient data plane: a ring allreduce among a step's members (reduce-scatter, then allgather)
 * over TensorChannel connections, like Horovod or PyTorch DDP, instead of a parameter server. Every
 * member ends with identical bytes, which is what keeps the replicas identical.
 */
export { DataPlane } from './data-plane';
export { addFloatsInto } from './ring-segments';
export type { DataPlaneOptions } from './data-plane';
export { RingError, RING_PHASES } from './errors';
export type { RingPhase } from './errors';
export type { RingMember, RingReduction, RingStats } from './ring-types';
