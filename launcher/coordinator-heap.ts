/**
 * The coordinator's V8 heap settings: one rule for its old-generation cap, applied where the process is
 * started (the launcher's spawn, the Helm chart's NODE_OPTIONS) and checked by `shardwise coordinator`.
 *
 * Why a cap at all: at 10 steps/s with 64 workers the coordinator promotes 3-6 MiB/s of per-step objects
 * (orders, shares, session wake-ups that outlive two scavenges). V8 sets the next full GC at up to 4x what
 * survived the last one, and what survives includes garbage promoted during concurrent marking, so the
 * threshold ratchets and RSS follows it (1.83x in 3,000 steps of `make soak`) while the live heap stays
 * flat. A cap makes V8 collect before the old space grows past it: RSS 1.07-1.11x (docs/chaos.md).
 *
 * The rule, from the old generation (every space but the young one: what the cap limits) measured after
 * full GCs in `make soak` (small_cnn; 82-84 MiB with 16 workers: code, module sources, tfjs, the job's state):
 * - live old generation = COORDINATOR_BASE_HEAP_MB + COORDINATOR_HEAP_PER_WORKER_MB x maxWorkers;
 * - the cap is twice that, at least MIN_COORDINATOR_HEAP_CAP_MB: room for a step's garbage between GCs;
 * - a cap below 1.25x the live estimate is refused (HeapLimitError): V8 would collect back to back and
 *   then abort with "JavaScript heap out of memory" in the middle of a job.
 * The model does not enter: its tensors live in the backend's memory (wasm memory, native tfjs-node
 * buffers) and its encoded weights and checkpoints in ArrayBuffers, all outside the old generation.
 */
import { LauncherError } from './errors';

/** The coordinator's live old generation without workers (code, modules, tfjs, the job's state), in MiB. */
export const COORDINATOR_BASE_HEAP_MB = 80;
/** What each worker adds to the live old generation (member record, session stream, gRPC buffers), in MiB. */
export const COORDINATOR_HEAP_PER_WORKER_MB = 0.25;
/** The smallest cap the rule gives: below it a full GC would run every few steps for no memory saved. */
export const MIN_COORDINATOR_HEAP_CAP_MB = 128;

/** Raised when the coordinator's old-generation cap is too small for its job. */
export class HeapLimitError extends LauncherError {
  constructor(
    readonly capMb: number,
    readonly floorMb: number,
    readonly maxWorkers: number,
  ) {
    super(`the coordinator's old-generation cap --max-old-space-size=${capMb} is below the ${floorMb} MiB a job of up to ` +
      `${maxWorkers} workers needs (1.25x its live heap of about ${coordinatorLiveHeapMb(maxWorkers)} MiB); ` +
      `use --max-old-space-size=${coordinatorHeapCapMb(maxWorkers)} (what the launcher and the Helm chart set) or more`);
    this.name = 'HeapLimitError';
  }
}

/** The coordinator's expected live old generation after a full GC for `maxWorkers` workers, in MiB. */
export function coordinatorLiveHeapMb(maxWorkers: number): number {
  return Math.ceil(COORDINATOR_BASE_HEAP_MB + COORDINATOR_HEAP_PER_WORKER_MB * maxWorkers);
}

/** The old-generation cap the launcher and the chart give the coordinator, in MiB (192 for 64 workers). */
export function coordinatorHeapCapMb(maxWorkers: number): number {
  return Math.max(MIN_COORDINATOR_HEAP_CAP_MB, 2 * coordinatorLiveHeapMb(maxWorkers));
}

/** The smallest cap `shardwise coordinator` accepts, in MiB. */
export function coordinatorHeapFloorMb(maxWorkers: number): number {
  return Math.ceil(1.25 * coordinatorLiveHeapMb(maxWorkers));
}

/**
 * The coordinator's environment: `env` with the cap added to NODE_OPTIONS, unless the user already set one
 * there (theirs is kept, and checked by the coordinator). NODE_OPTIONS rather than node flags because the
 * shardwise command may be a wrapper script (bin/shardwise) or a compiled entry point alike.
 */
export function withCoordinatorHeapCap(env: NodeJS.ProcessEnv, capMb: number): NodeJS.ProcessEnv {
  if (explicitOldSpaceMb([], env.NODE_OPTIONS) !== undefined) return env;
  return { ...env, NODE_OPTIONS: [env.NODE_OPTIONS, `--max-old-space-size=${capMb}`].filter(Boolean).join(' ') };
}

const OLD_SPACE_FLAG = /^--max[-_]old[-_]space[-_]size=(\d+)$/;

/**
 * The old-generation cap this process was started with, in MiB, from its node flags or NODE_OPTIONS (the
 * later one wins, as in node); undefined when none was given (V8's default, gigabytes).
 */
export function explicitOldSpaceMb(execArgv: readonly string[], nodeOptions: string | undefined): number | undefined {
  let found: number | undefined;
  for (const arg of [...(nodeOptions ?? '').split(/\s+/), ...execArgv]) {
    const match = OLD_SPACE_FLAG.exec(arg);
    if (match) found = Number(match[1]);
  }
  return found;
}

/**
 * Checks the running coordinator's heap cap against its job's worker count.
 * @returns a line for the log saying which cap it runs with
 * @throws HeapLimitError when an explicit cap is below the floor
 */
export function checkCoordinatorHeap(maxWorkers: number, capMb: number | undefined): string {
  const wanted = coordinatorHeapCapMb(maxWorkers);
  if (capMb === undefined) {
    return `heap: no --max-old-space-size, so V8 lets RSS climb to about 4x the live heap between full GCs; ` +
      `NODE_OPTIONS=--max-old-space-size=${wanted} keeps it flat for up to ${maxWorkers} workers (the launcher and the Helm chart set it)`;
  }
  const floor = coordinatorHeapFloorMb(maxWorkers);
  if (capMb < floor) throw new HeapLimitError(capMb, floor, maxWorkers);
  return `heap: old generation capped at ${capMb} MiB (the rule gives ${wanted} MiB for up to ${maxWorkers} workers)`;
}
