import * as os from 'node:os';
import { type BackendPreference, ConfigError, MAX_WORKER_ID_LENGTH, type ModelParts, type NatsCredentials, resolveThreads, type TlsCredentials } from '../common';
import { type ComputedShare, runTrainShare, type TrainShareInput } from './share-runner';

/** Computes one training share on the replica's model (see {@link WorkerOptions.computeShare}). */
export type ShareComputer = (parts: ModelParts, input: TrainShareInput) => Promise<ComputedShare>;

/** How a worker reaches its coordinator and how patient it is. */
export interface WorkerOptions {
  /** `host:port` of the coordinator's gRPC endpoint. */
  coordinator: string;
  /** Worker id to ask for (a pod name, say); the coordinator may assign another. @default `<hostname>-<pid>` */
  id?: string;
  /** Port of `/metrics`; 0 lets the OS choose. @default 0 */
  metricsPort?: number;
  /** Address `/metrics` binds; `0.0.0.0` inside a pod so Prometheus can reach it. @default '127.0.0.1' */
  metricsHost?: string;
  /** Address the allreduce data plane binds; `0.0.0.0` inside a pod. @default '127.0.0.1' */
  dataHost?: string;
  /** Port of the data plane; 0 lets the OS choose. @default 0 */
  dataPort?: number;
  /** Host the other allreduce members reach this worker at (the pod IP when `dataHost` is 0.0.0.0). @default dataHost */
  advertiseHost?: string;
  /** Compute backend. @default 'auto' */
  backend?: BackendPreference;
  /**
   * Threads computing a share's micro-batches (a pool of replicas, see ShareThreads); the sums do not
   * depend on it. @default OMP_NUM_THREADS, else the cores this process is given
   */
  threads?: number;
  /**
   * Largest gRPC message this worker accepts (it tells the coordinator, which sends at most the smaller
   * of this and its own limit). Generous because a step's samples arrive in one message. @default 67108864
   */
  maxMessageBytes?: number;
  /** How long the coordinator may hold back the worker's next order on its Session stream before answering WAIT. @default 5000 */
  pullWaitMs?: number;
  /** Deadline of every small call (Register, GetConfig, Heartbeat, Leave, SubmitEval). @default 10000 */
  rpcDeadlineMs?: number;
  /** Deadline of the calls that move tensors (GetWeights, PushGradients, an order's update). @default 120000 */
  transferDeadlineMs?: number;
  /**
   * Keep retrying a coordinator that is unreachable (UNAVAILABLE, or silent past deadlines) for this
   * long, e.g. while it restarts from a checkpoint; then fail with CoordinatorUnreachableError.
   * @default 300000
   */
  retryLimitMs?: number;
  /**
   * How long a registration refused because another live process holds the id (ALREADY_EXISTS) is tried
   * again: long enough for a dead predecessor's lease to expire (a pod recreated under its name); then
   * the worker exits with WorkerIdInUseError. @default 60000
   */
  idInUseWaitMs?: number;
  /** User and password on the job's NATS server, when it requires them (`--nats-credentials`). @default none */
  natsCredentials?: NatsCredentials;
  /**
   * The worker's certificate (naming its id), the job's CA and join token (`--tls-dir`): mutual TLS to the
   * coordinator and on the data plane. @default none: plaintext (`--insecure`)
   */
  tls?: TlsCredentials;
  /**
   * After a drain starts (SIGTERM, or the coordinator asks), wait this long for the share in progress
   * to be pushed; then cancel what is left and leave anyway. @default 60000
   */
  shutdownGraceMs?: number;
  /** Where status lines go (never stdout, which carries the ready line). @default stderr */
  log?: (line: string) => void;
  /**
   * A line for every share as it starts, reduces and is accepted, instead of a progress line every
   * PROGRESS_INTERVAL_MS (`--log-steps`). @default false
   */
  logSteps?: boolean;
  /**
   * A test and bench seam, not a user option: what computes a training share. The soak (test/soak) swaps
   * in a synthetic gradient to load the coordinator and the exchange without the model's compute;
   * everything around it (session, data plane, allreduce, replica updates) stays the real one.
   * @default runTrainShare: the model's forward and backward passes
   */
  computeShare?: ShareComputer;
}

/** {@link WorkerOptions} with every default filled and every field checked. */
export interface CompiledWorkerOptions {
  coordinator: string;
  id: string;
  metricsPort: number;
  metricsHost: string;
  dataHost: string;
  dataPort: number;
  advertiseHost: string;
  backend: BackendPreference;
  threads: number;
  maxMessageBytes: number;
  pullWaitMs: number;
  rpcDeadlineMs: number;
  transferDeadlineMs: number;
  retryLimitMs: number;
  idInUseWaitMs: number;
  natsCredentials?: NatsCredentials;
  tls?: TlsCredentials;
  shutdownGraceMs: number;
  log: (line: string) => void;
  logSteps: boolean;
  computeShare: ShareComputer;
}

/** Default of {@link WorkerOptions.maxMessageBytes}: room for a large evaluation share's pixels. */
export const WORKER_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const BACKENDS: readonly BackendPreference[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

/** The id a worker asks for when none is given: unique per host and process, readable in logs. */
export function defaultWorkerId(hostname = os.hostname(), pid = process.pid): string {
  return `${hostname}-${pid}`.slice(-MAX_WORKER_ID_LENGTH);
}

function positiveMs(field: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0) throw new ConfigError(field, `expected a positive integer of milliseconds, got ${value}`);
  return value;
}

/**
 * Fills the defaults of {@link WorkerOptions} and checks every field and the rules between them,
 * throwing a ConfigError that names the field. Pure apart from the default id (hostname, pid) and thread
 * count (OMP_NUM_THREADS, the cores given).
 */
export function compileWorkerOptions(options: WorkerOptions): CompiledWorkerOptions {
  const coordinator = options.coordinator?.trim() ?? '';
  if (!/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(coordinator)) {
    throw new ConfigError('coordinator', `expected host:port, got '${options.coordinator}'`);
  }
  const id = options.id ?? defaultWorkerId();
  if (id.length === 0 || id.length > MAX_WORKER_ID_LENGTH || /\s/.test(id)) {
    throw new ConfigError('id', `expected 1-${MAX_WORKER_ID_LENGTH} characters without spaces, got '${id}'`);
  }
  const metricsPort = checkPort('metricsPort', options.metricsPort ?? 0);
  const backend = options.backend ?? 'auto';
  if (!BACKENDS.includes(backend)) throw new ConfigError('backend', `expected one of ${BACKENDS.join(', ')}, got '${backend}'`);
  const maxMessageBytes = options.maxMessageBytes ?? WORKER_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 64 * 1024) {
    throw new ConfigError('maxMessageBytes', `expected an integer of at least 65536 bytes, got ${maxMessageBytes}`);
  }
  const rpcDeadlineMs = positiveMs('rpcDeadlineMs', options.rpcDeadlineMs ?? 10_000);
  const pullWaitMs = positiveMs('pullWaitMs', options.pullWaitMs ?? 5_000);
  const transferDeadlineMs = positiveMs('transferDeadlineMs', options.transferDeadlineMs ?? 120_000);
  if (transferDeadlineMs < rpcDeadlineMs) {
    throw new ConfigError('transferDeadlineMs', `expected at least rpcDeadlineMs (${rpcDeadlineMs}), got ${transferDeadlineMs}`);
  }
  const retryLimitMs = positiveMs('retryLimitMs', options.retryLimitMs ?? 300_000);
  const shutdownGraceMs = positiveMs('shutdownGraceMs', options.shutdownGraceMs ?? 60_000);
  return {
    coordinator,
    id,
    metricsPort,
    metricsHost: options.metricsHost ?? '127.0.0.1',
    dataHost: options.dataHost ?? '127.0.0.1',
    dataPort: checkPort('dataPort', options.dataPort ?? 0),
    advertiseHost: options.advertiseHost || (options.dataHost ?? '127.0.0.1'),
    backend,
    threads: resolveThreads(options.threads).threads,
    maxMessageBytes,
    pullWaitMs,
    rpcDeadlineMs,
    transferDeadlineMs,
    retryLimitMs,
    idInUseWaitMs: positiveMs('idInUseWaitMs', options.idInUseWaitMs ?? 60_000),
    natsCredentials: options.natsCredentials,
    tls: checkWorkerTls(options.tls, id),
    shutdownGraceMs,
    log: options.log ?? ((line) => process.stderr.write(`${line}\n`)),
    logSteps: options.logSteps ?? false,
    computeShare: options.computeShare ?? runTrainShare,
  };
}

/** A worker's credentials must be a worker certificate for its own id, with the join token. */
function checkWorkerTls(tls: TlsCredentials | undefined, id: string): TlsCredentials | undefined {
  if (tls && (tls.identity.role !== 'worker' || tls.identity.name !== id || !tls.joinToken)) {
    throw new ConfigError('tls', `expected the certificate of worker '${id}' and the job's join token, got ${tls.identity.role} '${tls.identity.name}'${tls.joinToken ? '' : ' without a token'}`);
  }
  return tls;
}

function checkPort(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new ConfigError(field, `expected a port 0-65535, got ${value}`);
  return value;
}
