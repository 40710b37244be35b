import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { mergeTimeline } from '../common';
import { describeFinalEpoch, LocalCluster, MAX_LOCAL_WORKERS, readFinalEpoch } from '../launcher';
import { backendOption, collectOverride, log, timelineOption } from './options';

function parseWorkerCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LOCAL_WORKERS) {
    throw new InvalidArgumentError(`expected a worker count from 1 to ${MAX_LOCAL_WORKERS}, got '${value}'`);
  }
  return n;
}

/**
 * `shardwise cluster`: the whole distributed job on this machine (nats-server, coordinator, N workers).
 * The first Ctrl-C (or SIGTERM) stops it in order: workers drain, the coordinator checkpoints, the bus
 * stops; a second Ctrl-C kills everything at once. Exits with the coordinator's exit status.
 */
export function clusterCommand(): Command {
  return new Command('cluster')
    .description('run a distributed job on this machine: a nats-server, the coordinator and N worker processes')
    .requiredOption('--job <file>', 'job spec (YAML or JSON)')
    .option('--workers <n>', 'workers to start (default: distributed.desiredWorkers of the job)', parseWorkerCount)
    .option('--data <dir>', 'CIFAR-10 folder with data_batch_*.bin (default: data.dir, CIFAR10_DIR, then download)')
    .option('--runs-dir <dir>', 'parent folder of run directories (default: output.runsDir)')
    .option('--run-dir <dir>', 'run directory to use; resumes from its checkpoints if it has any')
    .option('--set <key=value>', 'override a job spec field, e.g. --set training.epochs=2 (repeatable)', collectOverride, [])
    .option('--insecure', 'plaintext gRPC and data plane, no certificates or join token (prints a warning; default: mutual TLS with a development CA made for this run)')
    .option('--no-bus', 'do not start nats-server (config changes still reach workers over gRPC; `shardwise scale` cannot add or drain workers)')
    .addOption(backendOption())
    .addOption(timelineOption())
    .action(async (opts) => {
      const cluster = LocalCluster.create({
        job: opts.job,
        workers: opts.workers,
        data: opts.data,
        runsDir: opts.runsDir,
        runDir: opts.runDir,
        set: opts.set,
        bus: opts.bus,
        insecure: opts.insecure === true,
        backend: opts.backend === 'auto' ? undefined : opts.backend,
        // Every child records its part of the trace (the flag's environment variable reaches them all).
        env: opts.timeline ? { ...process.env, SHARDWISE_TIMELINE: path.resolve(opts.timeline) } : undefined,
      });
      // Installed before anything starts: the children run in their own process groups, so the terminal's
      // Ctrl-C reaches only this process, and without a handler they would outlive it.
      let interrupts = 0;
      const onSignal = (signal: NodeJS.Signals): void => {
        interrupts++;
        if (interrupts === 1) {
          log(`[cluster] ${signal}: stopping workers, then the coordinator, then nats-server (again to kill at once)`);
          void cluster.stop();
        } else {
          log(`[cluster] ${signal} again: killing every process`);
          cluster.kill();
        }
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        await cluster.start();
      } catch (err) {
        if (interrupts > 0) process.exit(await cluster.stop());
        throw err;
      }
      const code = await cluster.finished;
      const { runDir, metrics } = cluster.coordinator;
      log(`[cluster] ${describeFinalEpoch(runDir, readFinalEpoch(runDir))}`);
      if (!cluster.jobFinished) log(`[cluster] the job did not finish; resume it with: shardwise cluster --job ${opts.job} --run-dir ${runDir}`);
      log(`[cluster] metrics.jsonl and curves in ${runDir}; live metrics were served at ${metrics} while it ran`);
      // Merged again once every process has exited: the coordinator's merge came before the workers' last spans.
      if (opts.timeline) log(`[cluster] timeline ${mergeTimeline(path.resolve(opts.timeline)).file}`);
      process.exit(code);
    });
}
