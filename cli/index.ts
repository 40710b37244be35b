#!/usr/bin/env node
/**
 * The `shardwise` command line. Each subcommand parses its flags here and hands a typed options object
 * to the module that does the work.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError } from '../common';
import { reportAndExit } from './fail';
import { trainLocal } from './train-local';

const BACKENDS = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;

function collect(value: string, previous: string[]): string[] {
  if (!value.includes('=')) throw new InvalidArgumentError(`expected key.path=value, got '${value}'`);
  return [...previous, value];
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

export function buildProgram(): Command {
  const program = new Command('shardwise')
    .description('Distributed data-parallel fine-tuning of image classifiers')
    .showHelpAfterError();

  program
    .command('train')
    .description('fine-tune a model on CIFAR-10 as described by a job spec')
    .requiredOption('--job <file>', 'job spec (YAML or JSON)')
    .option('--local', 'train in this process (the single-process reference trainer)')
    .option('--data <dir>', 'CIFAR-10 folder with data_batch_*.bin (default: data.dir, CIFAR10_DIR, then download)')
    .option('--runs-dir <dir>', 'parent folder of run directories (default: output.runsDir)')
    .option('--set <key=value>', 'override a job spec field, e.g. --set training.epochs=2 (repeatable)', collect, [])
    .addOption(new Option('--backend <name>', 'compute backend').choices(BACKENDS).default('auto'))
    .action(async (opts) => {
      if (!opts.local) {
        throw new ConfigError('train', 'only --local training runs in this process; start a distributed job with `shardwise coordinator`');
      }
      await trainLocal({ job: opts.job, data: opts.data, set: opts.set, runsDir: opts.runsDir, backend: opts.backend }, log);
    });

  return program;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => reportAndExit(err));
}
