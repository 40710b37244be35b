import { Command, InvalidArgumentError, Option } from 'commander';
import { type BackendPreference, closeTimeline, openTimeline, readNatsCredentials } from '../common';
import { LOG_STEPS_ENV, PROGRESS_INTERVAL_MS, Worker, type WorkerReadyInfo, installStopBeforePush } from '../worker';
import { tlsDirOption, tlsFromFlag, workerIdentity } from './tls-options';
import { backendOption, log, parsePort, threadsFlag, threadsOption, timelineOption } from './options';

/** Exit status after a second SIGTERM/SIGINT: the conventional 128 + signal number of SIGTERM. */
export const EXIT_KILLED = 143;

function parseSeconds(value: string): number {
  const s = Number(value);
  if (!Number.isFinite(s) || s <= 0) throw new InvalidArgumentError(`expected a positive number of seconds, got '${value}'`);
  return s;
}

/** The ready line of the distributed contract; tests and the launcher parse it from stdout. */
export function workerReadyLine(info: WorkerReadyInfo): string {
  return `shardwise worker ready id=${info.id} coordinator=${info.coordinator} metrics=${info.metricsUrl}`;
}

/**
 * `shardwise worker`: one worker process. The first SIGTERM (or Ctrl-C) drains it: the share in
 * progress is finished and pushed, the worker leaves, and the process exits 0. A second one exits at once.
 */
export function workerCommand(): Command {
  return new Command('worker')
    .description('join a distributed job as a worker: pull steps from the coordinator, push gradients')
    .requiredOption('--coordinator <host:port>', 'gRPC address of the coordinator')
    .option('--id <name>', 'worker id to ask for (default: <hostname>-<pid>)')
    .option('--metrics-port <port>', 'port of /metrics (0: any free port)', parsePort, 0)
    .option('--metrics-host <address>', 'address /metrics binds (0.0.0.0 to be scraped from other hosts)', '127.0.0.1')
    .option('--data-host <address>', 'address the allreduce data plane binds (0.0.0.0 in a pod)', '127.0.0.1')
    .option('--data-port <port>', 'port of the allreduce data plane (0: any free port)', parsePort, 0)
    .option('--advertise-host <host>', 'host the other allreduce members reach this worker at (default: --data-host; the pod IP in a pod)')
    .addOption(
      new Option('--retry-limit <seconds>', 'give up when the coordinator stays unreachable this long')
        .argParser(parseSeconds)
        .default(300),
    )
    .addOption(
      new Option('--shutdown-grace <seconds>', 'on SIGTERM, wait this long for the current share before leaving anyway')
        .argParser(parseSeconds)
        .default(60),
    )
    .addOption(
      new Option('--id-in-use-wait <seconds>', 'when another live process holds the id, wait this long for it to go, then exit')
        .argParser(parseSeconds)
        .default(60),
    )
    .option('--nats-credentials <file>', 'JSON {"user", "password"} for the job\'s NATS server, when it requires them (a mounted Secret)')
    .addOption(tlsDirOption())
    .addOption(backendOption())
    .addOption(threadsOption())
    .addOption(timelineOption())
    .addOption(new Option('--log-steps', `a line for every share as it starts, reduces and is accepted (default: a progress line every ${PROGRESS_INTERVAL_MS / 1000} s)`)
      .env(LOG_STEPS_ENV))
    .action(async (opts) => {
      if (opts.timeline) openTimeline({ file: opts.timeline, processName: opts.id ?? 'worker' });
      installStopBeforePush();
      const identity = workerIdentity(opts.id, opts.tlsDir);
      const worker = new Worker(
        {
          coordinator: opts.coordinator,
          id: opts.id,
          metricsPort: opts.metricsPort,
          metricsHost: opts.metricsHost,
          dataHost: opts.dataHost,
          dataPort: opts.dataPort,
          advertiseHost: opts.advertiseHost,
          backend: opts.backend as BackendPreference,
          threads: threadsFlag(opts.threads),
          retryLimitMs: Math.round(opts.retryLimit * 1000),
          shutdownGraceMs: Math.round(opts.shutdownGrace * 1000),
          idInUseWaitMs: Math.round(opts.idInUseWait * 1000),
          natsCredentials: opts.natsCredentials === undefined ? undefined : readNatsCredentials(opts.natsCredentials),
          tls: tlsFromFlag(opts.tlsDir, identity ?? { role: 'worker', name: '' }),
          log,
          logSteps: opts.logSteps === true,
        },
        { onReady: (info) => process.stdout.write(`${workerReadyLine(info)}\n`) },
      );
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals): void => {
        if (++signals === 1) {
          worker.drain(`${signal} received`);
        } else {
          log(`shardwise worker: ${signal} again; exiting at once`);
          process.exit(EXIT_KILLED);
        }
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      const outcome = await worker.run().finally(closeTimeline);
      log(`shardwise worker: ${outcome.reason}: ${outcome.trainShares} training and ${outcome.evalShares} evaluation shares accepted`);
      // Open handles (a gRPC channel winding down, the wasm backend's threads) must not keep a finished worker alive.
      process.exit(0);
    });
}
