import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  buildModel,
  ConfigError,
  COORDINATOR_SERVICE,
  countTlsReloads,
  DataPlane,
  DEFAULT_MAX_TENSOR_BYTES,
  createTrainerState,
  disposeModelParts,
  deriveBusKey,
  disposeTrainerState,
  EventBus,
  grpcServerCredentials,
  loadTrainVal,
  type MetricsServer,
  modelFingerprint,
  RUN_FILES,
  RunDirectory,
  RunRecorder,
  recordsBefore,
  type RunningGrpcServer,
  serveMetrics,
  startGrpcServer,
} from '../common';
import { createStatusPage } from '../status';
import { startAutoscaler } from './autoscaler';
import { CallAccess } from './call-access';
import { ChangeSignal } from './change-signal';
import { CheckpointStore, listCheckpoints } from './checkpoint-store';
import { type Boundary, restoreCheckpoint, type Restored } from './checkpointing';
import { type CompiledCoordinatorOptions, compileCoordinatorOptions, type CoordinatorOptions } from './coordinator-options';
import { coordinatorService, sessionKeepalive } from './coordinator-service';
import { CoordinatorTelemetry } from './coordinator-telemetry';
import { EpochLedger } from './epoch-ledger';
import { JobAnnouncer } from './job-announcer';
import { JobContext } from './job-context';
import { type JobOutcome, JobRunner } from './job-runner';
import { CoordinatorState, Lifecycle } from './lifecycle';
import { Membership } from './membership';
import { StepPlanner, UpdateLog } from './step';

/** A coordinator serving a job. */
export interface RunningCoordinator {
  /** `host:port` workers dial. */
  readonly grpcAddress: string;
  /** `http://host:port/metrics`. */
  readonly metricsUrl: string;
  /** Absolute path of the run directory. */
  readonly runDir: string;
  /** The job id (spec.name) naming the bus subject. */
  readonly jobId: string;
  /** Whether it resumed from a checkpoint, and at which global step. */
  readonly resumedAtStep: number | null;
  /** Settles when the job finished (every worker told STOP, or the grace passed), was stopped, or failed. */
  readonly done: Promise<JobOutcome>;
  /** The lifecycle state now. */
  state(): CoordinatorState;
  /** Drains (SIGTERM): the step in progress gets drainGraceMs, then a checkpoint; `done` then settles. */
  stop(): void;
  /**
   * Stops serving and frees everything: stops the job first if it is still running (as `stop()`), then
   * shuts the gRPC and metrics servers, the bus, the recorder (curves, final model) and the model.
   */
  close(): Promise<void>;
}

/**
 * Opens `--run-dir` to resume it, or starts a new run there when it does not exist yet (a chart's fixed
 * path on a fresh volume) and says so. A run directory whose parent is missing too is refused: that is a
 * typo, and starting afresh would look like a resume that silently lost the run.
 */
function openRunDirectory(options: CompiledCoordinatorOptions): RunDirectory {
  if (options.runDir === undefined) return RunDirectory.create(options.runsDir, options.spec.name);
  const dir = path.resolve(options.runDir);
  if (!fs.existsSync(dir)) {
    const parent = path.dirname(dir);
    if (!fs.statSync(parent, { throwIfNoEntry: false })?.isDirectory()) {
      throw new ConfigError('runDir', `${dir} does not exist and neither does its parent ${parent}: nothing to resume ` +
        'there; create the parent to start a new run in it, or leave --run-dir out to start one under --runs-dir');
    }
    options.log(`run directory ${dir} does not exist: starting a new run in it`);
    fs.mkdirSync(dir);
  }
  return RunDirectory.open(dir);
}

/**
 * Starts a coordinator: opens (or resumes) the run directory, loads the model and the data, restores
 * the newest checkpoint if there is one, connects the bus (when `natsUrl` is set), starts the gRPC and
 * metrics servers and the job loop. Resolves once workers can connect.
 */
export async function startCoordinator(input: CoordinatorOptions): Promise<RunningCoordinator> {
  const options = compileCoordinatorOptions(input);
  const { spec, log } = options;
  const run = openRunDirectory(options);
  const store = new CheckpointStore(path.join(run.dir, RUN_FILES.checkpoints), { keep: options.keepCheckpoints });
  const latest = await store.latest();
  for (const skipped of latest.skipped) log(`warning: skipping a damaged checkpoint: ${skipped.message}`);
  // The model first: a bad model fails in seconds, before a possibly long dataset download.
  const parts = await buildModel(spec.model, spec.seed);
  const cleanup: Array<() => Promise<void> | void> = [() => disposeModelParts(parts)];
  const undo = async (): Promise<void> => {
    for (const f of cleanup.reverse()) await f();
  };
  try {
    const data = await loadTrainVal(spec.data, spec.seed, { log });
    log(`data: ${data.train.count} training and ${data.val.count} validation images from ${data.dir}`);
    const planner = new StepPlanner({
      sampleCount: data.train.count,
      seed: spec.seed,
      batchSize: spec.training.batchSize,
      microBatchSize: spec.training.microBatchSize,
    });
    const trainer = createTrainerState(spec, parts, planner.stepsPerEpoch);
    cleanup.push(() => disposeTrainerState(trainer));
    let restored: Restored | undefined;
    if (latest.checkpoint) {
      restored = restoreCheckpoint(trainer, spec, run.dir, latest.checkpoint);
      log(`resuming ${run.dir} from ${latest.checkpoint.path}: epoch ${restored.boundary.position.epoch}, ` +
        `step ${restored.boundary.position.step} (global step ${restored.weightsVersion})`);
    } else {
      run.writeJobSpec(spec);
    }
    const ledger = restored ? EpochLedger.fromJSON(restored.boundary.ledger) : new EpochLedger(data.train.count);
    const boundary: Boundary = restored?.boundary ?? {
      position: { epoch: 0, step: 0 },
      ledger: ledger.toJSON(),
      epochTrain: { lossSum: 0, correctTop1: 0, correctTop5: 0, count: 0 },
    };
    const bus = options.natsUrl ? await EventBus.connect({ servers: options.natsUrl, jobId: spec.name, name: 'shardwise-coordinator', credentials: options.natsCredentials,
      signingKey: options.tls?.joinToken && deriveBusKey(options.tls.joinToken, spec.name) }) : null;
    const announcer = new JobAnnouncer(bus, spec.name, log);
    cleanup.push(() => announcer.close());
    const telemetry = new CoordinatorTelemetry();
    countTlsReloads(telemetry.registry, options.tls, 'shardwise_tls_reloads_total');
    const lifecycle = new Lifecycle();
    const d = spec.distributed;
    const dataPlane = d.exchange === 'allreduce'
      ? await DataPlane.listen({ host: options.host, port: options.dataPort, advertiseHost: options.advertiseHost, maxTotalBytes: DEFAULT_MAX_TENSOR_BYTES, tls: options.tls, onRefused: log })
      : null;
    if (dataPlane) {
      cleanup.push(() => dataPlane.close());
      log(`allreduce data plane on ${dataPlane.address}`);
    }
    const job = new JobContext({
      dataPlane,
      options,
      jobId: spec.name,
      parts,
      fingerprint: modelFingerprint(parts),
      trainer,
      planner,
      membership: new Membership({ minWorkers: d.minWorkers, maxWorkers: d.maxWorkers, heartbeatTimeoutMs: d.leaseMs }),
      ledger,
      data: { train: data.train, val: data.val },
      updates: new UpdateLog(),
      telemetry,
      announcer,
      lifecycle,
      changed: new ChangeSignal(),
      configVersion: restored?.configVersion ?? 0,
      weightsVersion: restored?.weightsVersion ?? 0,
    });
    job.members.restoreDesired(restored?.desiredWorkers ?? d.desiredWorkers);
    lifecycle.onChange((state) => announcer.jobState(state, job.configVersion, job.weightsVersion));
    // A resumed run keeps the records from before its checkpoint; the steps after it are recorded again.
    const history = restored ? recordsBefore(run.readMetrics({ allowTruncatedTail: true }), {
      epoch: boundary.position.epoch,
      globalStep: restored.weightsVersion,
      enteredEpoch: trainer.epoch,
    }) : [];
    if (restored) run.rewriteMetrics(history);
    const recorder = new RunRecorder({
      run,
      history,
      parts,
      epochs: spec.training.epochs,
      stepsPerEpoch: planner.stepsPerEpoch,
      checkpointEveryEpochs: spec.output.checkpointEveryEpochs,
      stream: options.progressStream,
    });
    cleanup.push(() => recorder.close());
    const status = createStatusPage({
      spec, stepsPerEpoch: planner.stepsPerEpoch, registry: telemetry.registry, metricsFile: path.join(run.dir, RUN_FILES.metrics),
      state: () => lifecycle.state, workers: () => job.members.list(), checkpoints: () => listCheckpoints(store.dir), warn: log,
    });
    cleanup.push(() => status.close());
    const runner = new JobRunner(job, { store, recorder, run, boundary, resumedFrom: latest.checkpoint?.path });
    runner.prepare();
    const server: RunningGrpcServer = await startGrpcServer(
      [{ definition: COORDINATOR_SERVICE, implementation: coordinatorService(job, new CallAccess(options.tls)) }],
      { host: options.host, port: options.port, maxMessageBytes: d.maxMessageBytes, ...sessionKeepalive(d.leaseMs),
        credentials: options.tls && grpcServerCredentials(options.tls) },
    );
    cleanup.push(() => server.shutdown(1000));
    const metrics: MetricsServer = await serveMetrics(telemetry.registry, {
      host: options.metricsHost,
      port: options.metricsPort,
      isHealthy: () => lifecycle.state !== CoordinatorState.Failed,
      routes: status.routes,
    });
    cleanup.push(() => metrics.close());
    // Before the job starts: autoscaling that cannot reach its Kubernetes API fails the start, loudly.
    const autoscaler = await startAutoscaler(job);
    if (autoscaler) cleanup.push(() => autoscaler.stop());
    lifecycle.moveTo(CoordinatorState.Running);
    runner.start();
    void runner.done.then((outcome) => {
      try {
        run.writeSummary({
          mode: 'distributed',
          status: outcome.status,
          seconds: outcome.seconds,
          globalSteps: outcome.globalStep,
          final: outcome.final,
          error: outcome.error instanceof Error ? outcome.error.message : undefined,
          checkpoint: outcome.checkpoint ?? null,
          membership: job.members.counters(),
          ledger: job.ledger.counters(),
        });
      } catch (err) {
        log(`error: ${(err as Error).message}`);
      }
    });
    let closing: Promise<void> | undefined;
    return {
      grpcAddress: server.address,
      metricsUrl: `${metrics.url}/metrics`,
      runDir: run.dir,
      jobId: spec.name,
      resumedAtStep: restored ? restored.weightsVersion : null,
      done: runner.done,
      state: () => lifecycle.state,
      stop: () => runner.stop(),
      close: () =>
        (closing ??= (async () => {
          if (!lifecycle.ended) runner.stop();
          await runner.done;
          await undo();
        })()),
    };
  } catch (err) {
    await undo().catch(() => undefined);
    throw err;
  }
}
