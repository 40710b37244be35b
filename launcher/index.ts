/**
 * The local cluster launcher (`shardwise cluster`): a nats-server, the coordinator and N worker processes
 * on this machine, started and stopped in order, scaled by the coordinator's `scale` events. Its process
 * handling (ready lines, clean stops) is what the integration tests drive their processes with too.
 */
export { LocalCluster, type ClusterState } from './cluster';
export { describeExit, type WorkerInfo, WorkerPool, type WorkerPoolOptions } from './worker-pool';
export {
  type ClusterOptions,
  type CompiledClusterOptions,
  type ShardwiseCommand,
  compileClusterOptions,
  defaultShardwiseCommand,
  MAX_LOCAL_WORKERS,
} from './cluster-options';
export { MALLOC_SETTINGS, withMallocSettings } from './malloc-env';
export {
  type ChildSpec,
  type ExitStatus,
  exitCodeOf,
  ManagedChild,
  type OutputStream,
  type StopOptions,
  type WaitForLineOptions,
} from './child-process';
export {
  checkCoordinatorHeap,
  coordinatorHeapCapMb,
  coordinatorHeapFloorMb,
  coordinatorLiveHeapMb,
  explicitOldSpaceMb,
  HeapLimitError,
  withCoordinatorHeapCap,
} from './coordinator-heap';
export { type LocalNats, type LocalNatsAccess, type LocalNatsOptions, startLocalNats } from './nats';
export {
  COORDINATOR_DONE_PATTERN,
  COORDINATOR_READY_PATTERN,
  type CoordinatorReady,
  coordinatorReadyFrom,
  parseCoordinatorReady,
  parseWorkerReady,
  WORKER_READY_PATTERN,
  type WorkerReady,
  workerReadyFrom,
} from './ready-lines';
export { describeFinalEpoch, type FinalEpoch, readFinalEpoch } from './run-summary';
export {
  ChildExitedError,
  ChildStartError,
  ChildTimeoutError,
  LauncherError,
  NatsServerMissingError,
} from './errors';
