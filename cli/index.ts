#!/usr/bin/env node
/**
 * The `shardwise` command line. Each subcommand parses its flags here and hands a typed options object
 * to the module that does the work.
 */
import { Command } from 'commander';
import { version } from '../package.json';
import { certsCommand } from './certs-command';
import { clusterCommand } from './cluster-command';
import { coordinatorCommand } from './coordinator-command';
import { EXIT_USAGE, reportAndExit } from './fail';
import { backendOption, collectOverride, log, parsePositiveInt, threadsFlag, threadsOption } from './options';
import { scaleCommand } from './scale-command';
import { sweepCommand } from './sweep-command';
import { trainLocal } from './train-local';
import { workerCommand } from './worker-command';

export function buildProgram(): Command {
  const program = new Command('shardwise')
    .description('Distributed data-parallel fine-tuning of image classifiers')
    .version(version, '-V, --version', 'print the shardwise version')
    .showHelpAfterError();

  program
    .command('train')
    .description('fine-tune a model on CIFAR-10 in this process (the single-process reference trainer); ' +
      'for a distributed job use `shardwise cluster` (local) or `coordinator` + `worker`')
    .requiredOption('--job <file>', 'job spec (YAML or JSON)')
    .option('--local', 'train in this process: the default and only mode of `train`, accepted for older scripts')
    .option('--data <dir>', 'CIFAR-10 folder with data_batch_*.bin (default: data.dir, CIFAR10_DIR, then download)')
    .option('--runs-dir <dir>', 'parent folder of run directories (default: output.runsDir)')
    .option('--set <key=value>', 'override a job spec field, e.g. --set training.epochs=2 (repeatable)', collectOverride, [])
    .option('--resume-from <dir>', 'continue from an epoch checkpoint (checkpoints/epoch-NNN of an earlier local run)')
    .option('--until-epoch <n>', 'stop once this many epochs are done', parsePositiveInt)
    .option('--epoch-checkpoints', 'keep a training checkpoint after every epoch (checkpoints/epoch-NNN)')
    .option('--exit-with-parent', 'stop when the parent process dies (sweeps start their trials with it)')
    .addOption(backendOption())
    .addOption(threadsOption())
    .action(async (opts) => {
      await trainLocal({
        job: opts.job, data: opts.data, set: opts.set, runsDir: opts.runsDir, backend: opts.backend,
        resumeFrom: opts.resumeFrom, untilEpoch: opts.untilEpoch, epochCheckpoints: opts.epochCheckpoints === true,
        exitWithParent: opts.exitWithParent === true, threads: threadsFlag(opts.threads),
      }, log);
    });

  program.addCommand(coordinatorCommand());
  program.addCommand(workerCommand());
  program.addCommand(scaleCommand());
  program.addCommand(clusterCommand());
  program.addCommand(sweepCommand());
  program.addCommand(certsCommand());
  // A bad flag is bad input like a bad job spec: exit status 2 for both, so scripts can tell them from a
  // failed run. Commander exits 1 on its own; help and --version stay 0. addCommand() does not pass the
  // override on, so each subcommand gets it.
  for (const command of [program, ...program.commands]) {
    command.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE));
  }
  return program;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => reportAndExit(err));
}
