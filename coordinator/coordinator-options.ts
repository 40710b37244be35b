import { ConfigError, type JobSpec, type NatsCredentials, type ProgressStream, type TlsCredentials } from '../common';

/** Where a coordinator serves, where it writes, and how patient it is. */
export interface CoordinatorOptions {
  /** The validated job spec (`loadJobSpec` plus `--set` overrides and `--data`). */
  spec: JobSpec;
  /**
   * Run directory to write into. When it holds checkpoints the job resumes from the newest one that
   * verifies (the step in progress when it was written is redone). @default a new folder under `runsDir`
   */
  runDir?: string;
  /** Parent folder of new run directories. @default spec.output.runsDir */
  runsDir?: string;
  /** Interface the gRPC server binds; `0.0.0.0` inside a pod. @default '127.0.0.1' */
  host?: string;
  /** gRPC port; 0 picks a free one. @default 0 */
  port?: number;
  /** Port of the allreduce data plane (with `distributed.exchange: allreduce`); 0 picks a free one. @default 0 */
  dataPort?: number;
  /** Host workers reach the data plane at (a pod IP or Service name when `host` is 0.0.0.0). @default host */
  advertiseHost?: string;
  /** Interface `/metrics` binds. @default host */
  metricsHost?: string;
  /** Metrics port; 0 picks a free one. @default 0 */
  metricsPort?: number;
  /** NATS server to publish job events on; undefined runs without a bus. @default undefined */
  natsUrl?: string;
  /** The coordinator role's NATS user, when the server requires one (`--nats-credentials`). @default none */
  natsCredentials?: NatsCredentials;
  /**
   * The coordinator's certificate, the job's CA and join token (`--tls-dir`): gRPC and the data plane then
   * speak mutual TLS, each call needs its role's certificate and Register the join token.
   * @default none: plaintext, every caller trusted (`--insecure`)
   */
  tls?: TlsCredentials;
  /**
   * After the last epoch, how long the coordinator keeps answering STOP until every live worker was
   * told; then it finishes anyway. @default 10000
   */
  stopGraceMs?: number;
  /**
   * On `stop()` (SIGTERM), how long to wait for the step in progress to complete before checkpointing
   * without it (it is then redone after a resume). @default 30000
   */
  drainGraceMs?: number;
  /** Longest the next order on a Session stream is held back before a WAIT, whatever the worker asks for. @default 30000 */
  maxPullWaitMs?: number;
  /** Complete checkpoints kept in `<runDir>/checkpoints`. @default 3 */
  keepCheckpoints?: number;
  /**
   * Micro-batches each active worker is handed per training step, in the order the workers joined
   * (`--split 1,3`), instead of an even cut: how the tests force unaligned splits to check that the
   * weights do not depend on the split. A short step fills the counts in order. @default an even cut
   */
  split?: readonly number[];
  /** Receives status lines. @default writes to stderr */
  log?: (line: string) => void;
  /** Where the training progress display goes. @default process.stderr */
  progressStream?: ProgressStream;
}

/** {@link CoordinatorOptions} with defaults filled and checked. */
export interface CompiledCoordinatorOptions {
  spec: JobSpec;
  runDir?: string;
  runsDir: string;
  host: string;
  port: number;
  dataPort: number;
  advertiseHost: string;
  metricsHost: string;
  metricsPort: number;
  natsUrl?: string;
  natsCredentials?: NatsCredentials;
  tls?: TlsCredentials;
  stopGraceMs: number;
  drainGraceMs: number;
  maxPullWaitMs: number;
  keepCheckpoints: number;
  split?: readonly number[];
  log: (line: string) => void;
  progressStream?: ProgressStream;
}

/** Bytes a sample takes in an assignment: 32x32x3 pixels, a label, its index (varint). */
export const SAMPLE_WIRE_BYTES = 3072 + 1 + 5;
/** Room left in an assignment message for everything but the samples. */
export const ASSIGNMENT_OVERHEAD_BYTES = 16 * 1024;

/** Samples one assignment message can carry under `maxMessageBytes`. */
export function samplesPerMessage(maxMessageBytes: number): number {
  return Math.max(0, Math.floor((maxMessageBytes - ASSIGNMENT_OVERHEAD_BYTES) / SAMPLE_WIRE_BYTES));
}

function port(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new ConfigError(field, `expected 0..65535, got ${value}`);
  return value;
}

function positiveMs(field: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new ConfigError(field, `expected a positive number of milliseconds, got ${value}`);
  return value;
}

function checkSplit(split: readonly number[] | undefined, spec: JobSpec): readonly number[] | undefined {
  if (split === undefined) return undefined;
  const perStep = Math.ceil(spec.training.batchSize / spec.training.microBatchSize);
  const total = split.reduce((a, b) => a + b, 0);
  if (split.length === 0 || split.some((n) => !Number.isInteger(n) || n < 1) || total !== perStep) {
    throw new ConfigError('split', `expected positive micro-batch counts summing to the ${perStep} micro-batches of a step, got [${split.join(', ')}]`);
  }
  return [...split];
}

function checkCoordinatorTls(tls: TlsCredentials | undefined): TlsCredentials | undefined {
  if (tls && (tls.identity.role !== 'coordinator' || !tls.joinToken)) {
    throw new ConfigError('tls', `expected the coordinator's certificate and the job's join token, got ${tls.identity.role} credentials${tls.joinToken ? '' : ' without a token'}`);
  }
  return tls;
}

/**
 * Fills defaults and checks the rules between fields: a micro-batch (training or evaluation) must fit
 * in one assignment message under `distributed.maxMessageBytes`, or no worker could ever be given one.
 */
export function compileCoordinatorOptions(options: CoordinatorOptions): CompiledCoordinatorOptions {
  const { spec } = options;
  const host = options.host ?? '127.0.0.1';
  const keep = options.keepCheckpoints ?? 3;
  if (!Number.isInteger(keep) || keep < 1) throw new ConfigError('keepCheckpoints', `expected an integer >= 1, got ${keep}`);
  // The distributed evaluation round covers the validation split only; refusing beats a silently missing test column.
  if (spec.data.testSet) throw new ConfigError('data.testSet', 'the distributed trainer does not evaluate test_batch.bin yet; use `shardwise train --local`');
  const largestMicroBatch = Math.max(spec.training.microBatchSize, spec.training.evalBatchSize);
  const fits = samplesPerMessage(spec.distributed.maxMessageBytes);
  if (fits < largestMicroBatch) {
    throw new ConfigError(
      'distributed.maxMessageBytes',
      `expected room for one micro-batch of ${largestMicroBatch} samples (training.microBatchSize / evalBatchSize) ` +
        `in one message, ${spec.distributed.maxMessageBytes} bytes hold ${fits}`,
    );
  }
  return {
    spec,
    runDir: options.runDir,
    runsDir: options.runsDir ?? spec.output.runsDir,
    host,
    port: port('port', options.port ?? 0),
    dataPort: port('dataPort', options.dataPort ?? 0),
    advertiseHost: options.advertiseHost || host,
    metricsHost: options.metricsHost ?? host,
    metricsPort: port('metricsPort', options.metricsPort ?? 0),
    natsUrl: options.natsUrl === '' ? undefined : options.natsUrl,
    natsCredentials: options.natsCredentials,
    tls: checkCoordinatorTls(options.tls),
    stopGraceMs: positiveMs('stopGraceMs', options.stopGraceMs ?? 10_000),
    drainGraceMs: positiveMs('drainGraceMs', options.drainGraceMs ?? 30_000),
    maxPullWaitMs: positiveMs('maxPullWaitMs', options.maxPullWaitMs ?? 30_000),
    keepCheckpoints: keep,
    split: checkSplit(options.split, spec),
    log: options.log ?? ((line) => process.stderr.write(`${line}\n`)),
    progressStream: options.progressStream,
  };
}
