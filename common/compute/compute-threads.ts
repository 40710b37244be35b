import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { ConfigError } from '../errors';

/**
 * How many threads a process computes with (`--threads` of `shardwise worker` and `shardwise train
 * --local`). The default follows PyTorch: every core the process is given, unless `OMP_NUM_THREADS` says
 * otherwise, which is how a launcher that packs several processes on one machine (torchrun, `shardwise
 * cluster`) keeps them from oversubscribing it. Results never depend on it (see ShareThreads).
 */

/** The environment variable that sets the default thread count, as it does for PyTorch (OpenMP). */
export const THREADS_ENV_VAR = 'OMP_NUM_THREADS';

/** Where the cgroup v2 CPU limit of the process is: `<quota|max> <period>` in microseconds. */
const CGROUP_CPU_MAX = '/sys/fs/cgroup/cpu.max';

/** The cores of a cgroup v2 CPU limit (`200000 100000` is 2), rounded up; undefined without a limit. */
export function cgroupCores(cpuMax: string): number | undefined {
  const [quota, period] = cpuMax.trim().split(/\s+/);
  const q = Number(quota);
  const p = Number(period);
  if (quota === 'max' || !(q > 0 && p > 0)) return undefined;
  return Math.max(1, Math.ceil(q / p));
}

/**
 * The cores this process may run on: the CPUs its affinity allows, capped by its container's CPU limit (a
 * pod's `resources.limits.cpu`), which Node's own count ignores.
 */
export function coresGiven(readCpuMax: () => string = () => readFileSync(CGROUP_CPU_MAX, 'utf8')): number {
  let limit: number | undefined;
  try {
    limit = cgroupCores(readCpuMax());
  } catch {
    limit = undefined; // no cgroup v2 limit file: not in a container, or cgroup v1
  }
  return Math.max(1, Math.min(os.availableParallelism(), limit ?? Infinity));
}

/** A thread count given by a person: an integer of at least 1. @throws ConfigError naming `field` */
export function parseThreads(value: string, field: string): number {
  const n = Number(value);
  if (!(Number.isInteger(n) && n >= 1)) throw new ConfigError(field, `expected an integer >= 1, got '${value}'`);
  return n;
}

/**
 * The thread count to use: `requested` when given, else `OMP_NUM_THREADS`, else {@link coresGiven}; with
 * the source, for the log line.
 */
export function resolveThreads(
  requested: number | undefined,
  env: NodeJS.ProcessEnv = process.env,
  cores: () => number = coresGiven,
): { threads: number; source: string } {
  if (requested !== undefined) return { threads: parseThreads(String(requested), '--threads'), source: '--threads' };
  const fromEnv = env[THREADS_ENV_VAR];
  if (fromEnv !== undefined && fromEnv !== '') return { threads: parseThreads(fromEnv, THREADS_ENV_VAR), source: THREADS_ENV_VAR };
  return { threads: cores(), source: 'the cores this process is given' };
}
