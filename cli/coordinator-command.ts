import { Command, InvalidArgumentError } from 'commander';
import { type BackendPreference, closeTimeline, initBackend, type JobSpec, loadJobSpec, mergeTimeline, openTimeline, readNatsCredentials } from '../common';
import { type RunningCoordinator, startCoordinator } from '../coordinator';
import { checkCoordinatorHeap, explicitOldSpaceMb } from '../launcher';
import { tlsDirOption, tlsFromFlag } from './tls-options';
import { backendOption, collectOverride, log, parsePort, timelineOption } from './options';

/** Exit status after a second SIGTERM/SIGINT: 128 + SIGTERM. */
const EXIT_KILLED = 143;

function parseSeconds(value: string): number {
  const s = Number(value);
  if (!Number.isFinite(s) || s <= 0) throw new InvalidArgumentError(`expected a positive number of seconds, got '${value}'`);
  return s;
}

/** The ready line of the distributed contract; tests and the launcher parse it from stdout. */
export function coordinatorReadyLine(c: Pick<RunningCoordinator, 'grpcAddress' | 'metricsUrl' | 'runDir'>): string {
  return `shardwise coordinator ready grpc=${c.grpcAddress} metrics=${c.metricsUrl} run=${c.runDir}`;
}

/** The line printed once the job is finished and every worker was told to stop. */
export function coordinatorDoneLine(runDir: string): string {
  return `shardwise coordinator done run=${runDir}`;
}

/** `--split 1,3`: positive integer counts (their sum is checked against the job by the coordinator). */
function parseSplit(value: string): number[] {
  const counts = value.split(',').map(Number);
  if (counts.some((n) => !Number.isInteger(n) || n < 1)) throw new InvalidArgumentError(`expected positive integers like 1,3, got '${value}'`);
  return counts;
}

/**
 * `shardwise coordinator`: serves one distributed job. SIGTERM (or Ctrl-C) drains it: the step in
 * progress may finish, a checkpoint is written and the process exits 0; a later `--run-dir` of the same
 * folder resumes there. A second signal exits at once.
 */
export function coordinatorCommand(): Command {
  return new Command('coordinator')
    .description('run the coordinator of a distributed job: workers connect to it over gRPC')
    .requiredOption('--job <file>', 'job spec (YAML or JSON)')
    .option('--set <key=value>', 'override a job spec field, e.g. --set training.epochs=2 (repeatable)', collectOverride, [])
    .option('--data <dir>', 'CIFAR-10 folder with data_batch_*.bin (default: data.dir, CIFAR10_DIR, then download)')
    .option('--run-dir <dir>', 'run directory to use; resumes from its newest checkpoint when it holds one')
    .option('--runs-dir <dir>', 'parent folder of new run directories (default: output.runsDir)')
    .option('--host <address>', 'address the gRPC server binds (0.0.0.0 to accept other hosts)', '127.0.0.1')
    .option('--port <port>', 'gRPC port (0: any free port)', parsePort, 0)
    .option('--data-port <port>', 'port of the allreduce data plane (0: any free port)', parsePort, 0)
    .option('--advertise-host <host>', 'host workers reach the data plane at (default: --host; a pod IP or Service name in a cluster)')
    .option('--metrics-host <address>', 'address /metrics binds (default: --host)')
    .option('--metrics-port <port>', 'port of /metrics (0: any free port)', parsePort, 0)
    .option('--nats <url>', 'NATS server to publish job events on (default: no bus)')
    .option('--nats-credentials <file>', 'JSON {"user", "password"} for --nats, when it requires them (a mounted Secret)')
    .option('--stop-grace <seconds>', 'after the job, how long to wait until every worker was told to stop', parseSeconds, 10)
    .option('--drain-grace <seconds>', 'on SIGTERM, how long the step in progress may take before checkpointing without it', parseSeconds, 30)
    .addOption(tlsDirOption())
    .option('--split <counts>', 'micro-batches per worker and step, e.g. 1,3 (tests of the determinism contract; default: an even cut)',
      parseSplit)
    .addOption(backendOption())
    .addOption(timelineOption())
    .action(async (opts) => {
      if (opts.timeline) openTimeline({ file: opts.timeline, processName: 'coordinator' });
      const loaded = loadJobSpec(opts.job, opts.set);
      const spec: JobSpec = { ...loaded, data: { ...loaded.data, dir: opts.data ?? loaded.data.dir } };
      // Before anything starts: a cap too small for the job fails here, not as an out-of-memory abort mid-job.
      log(checkCoordinatorHeap(spec.distributed.maxWorkers, explicitOldSpaceMb(process.execArgv, process.env.NODE_OPTIONS)));
      await initBackend({ prefer: opts.backend as BackendPreference, log });
      const coordinator = await startCoordinator({
        spec,
        runDir: opts.runDir,
        runsDir: opts.runsDir,
        host: opts.host,
        port: opts.port,
        dataPort: opts.dataPort,
        advertiseHost: opts.advertiseHost,
        metricsHost: opts.metricsHost,
        metricsPort: opts.metricsPort,
        natsUrl: opts.nats,
        natsCredentials: opts.natsCredentials === undefined ? undefined : readNatsCredentials(opts.natsCredentials),
        tls: tlsFromFlag(opts.tlsDir, { role: 'coordinator', name: '' }),
        stopGraceMs: Math.round(opts.stopGrace * 1000),
        drainGraceMs: Math.round(opts.drainGrace * 1000),
        split: opts.split,
        log,
      });
      process.stdout.write(`${coordinatorReadyLine(coordinator)}\n`);
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals): void => {
        if (++signals === 1) {
          log(`shardwise coordinator: ${signal} received; checkpointing at the next step boundary`);
          coordinator.stop();
        } else {
          log(`shardwise coordinator: ${signal} again; exiting at once`);
          process.exit(EXIT_KILLED);
        }
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      const outcome = await coordinator.done;
      await coordinator.close();
      if (opts.timeline) {
        closeTimeline();
        const merged = mergeTimeline(opts.timeline);
        log(`timeline: ${merged.events} events of ${merged.parts} processes in ${merged.file}`);
      }
      if (outcome.status === 'failed') throw outcome.error;
      const val = outcome.final?.val;
      if (val) log(`validation after epoch ${(outcome.final?.epoch ?? 0) + 1}: top-1 ${pct(val.top1)}, top-5 ${pct(val.top5)}, loss ${val.loss.toFixed(4)}`);
      if (outcome.status === 'finished') process.stdout.write(`${coordinatorDoneLine(coordinator.runDir)}\n`);
      else log(`shardwise coordinator: stopped at global step ${outcome.globalStep}; resume with --run-dir ${coordinator.runDir} (from ${outcome.checkpoint ?? 'the start: no checkpoint was written'})`);
      // Open handles (gRPC channels winding down, the wasm backend's threads) must not keep a finished process alive.
      process.exit(0);
    });
}

function pct(fraction: number): string {
  return `${(100 * fraction).toFixed(1)}%`;
}
