/**
 * The machine-read lines the coordinator and worker print on stdout (fixed by the distributed contract).
 * The launcher and the integration tests find the processes' addresses here, so the patterns live once.
 */

/** Where a started coordinator can be reached, from its ready line. */
export interface CoordinatorReady {
  /** gRPC address `host:port` workers and `shardwise scale` dial. */
  grpc: string;
  /** Prometheus endpoint, e.g. `http://127.0.0.1:9464/metrics`. */
  metrics: string;
  /** Absolute path of the run directory. */
  runDir: string;
}

/** A started worker, from its ready line. */
export interface WorkerReady {
  id: string;
  /** The coordinator it talks to, `host:port`. */
  coordinator: string;
  metrics: string;
}

/** `shardwise coordinator ready grpc=127.0.0.1:PORT metrics=http://127.0.0.1:PORT/metrics run=/abs/run/dir` */
export const COORDINATOR_READY_PATTERN = /^shardwise coordinator ready grpc=(\S+) metrics=(\S+) run=(.+)$/;
/** `shardwise worker ready id=ID coordinator=HOST:PORT metrics=http://127.0.0.1:PORT/metrics` */
export const WORKER_READY_PATTERN = /^shardwise worker ready id=(\S+) coordinator=(\S+) metrics=(\S+)$/;
/** `shardwise coordinator done run=/abs/run/dir`: the job finished and the workers were told to stop. */
export const COORDINATOR_DONE_PATTERN = /^shardwise coordinator done run=(.+)$/;

/** The fields of a match of {@link COORDINATOR_READY_PATTERN}. */
export function coordinatorReadyFrom(match: RegExpExecArray): CoordinatorReady {
  return { grpc: match[1], metrics: match[2], runDir: match[3] };
}

/** The fields of a match of {@link WORKER_READY_PATTERN}. */
export function workerReadyFrom(match: RegExpExecArray): WorkerReady {
  return { id: match[1], coordinator: match[2], metrics: match[3] };
}

/** Parses a coordinator ready line; undefined when `line` is not one. */
export function parseCoordinatorReady(line: string): CoordinatorReady | undefined {
  const match = COORDINATOR_READY_PATTERN.exec(line);
  return match ? coordinatorReadyFrom(match) : undefined;
}

/** Parses a worker ready line; undefined when `line` is not one. */
export function parseWorkerReady(line: string): WorkerReady | undefined {
  const match = WORKER_READY_PATTERN.exec(line);
  return match ? workerReadyFrom(match) : undefined;
}
