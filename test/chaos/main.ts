/**
 * `make chaos`: a long chaos run. Prints `# ...` progress lines, then the one `chaos ...` line, and exits 1
 * when anything was lost, counted twice, disagreed, or the result differs from the undisturbed run.
 * Needs root (network namespaces, a tmpfs) and nats-server.
 */
import { randomInt } from 'node:crypto';
import { Command } from 'commander';
import { intFlag } from '../support/int-flag';
import { disposeLiveWorlds } from './chaos-world';
import { chaosLine, runChaos } from './run-chaos';

// Ctrl-C or a kill ends the run without its `finally`: remove the namespaces, links and the tmpfs first.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`chaos: ${signal}: removing the namespaces and the checkpoint disk\n`);
    void disposeLiveWorlds().finally(() => process.exit(130));
  });
}

const whole = intFlag(0);

const program = new Command('chaos')
  .option('--seed <n>', 'seed of the fault schedule and the data (default: random, printed)', whole)
  .option('--faults <n>', 'faults to inject (at least 7: one of each kind)', whole, 21)
  .option('--epochs <n>', 'epochs of the job (a fault and its recovery take about 7 steps)', whole, 14)
  .option('--images <n>', 'generated images (a quarter held out)', whole, 384)
  .option('--workers <n>', 'workers at the start', whole, 3)
  .option('--max-gap <steps>', 'most steps between one fault\'s recovery and the next fault (seeded)', whole, 4)
  .action(async (opts) => {
    const seed: number = opts.seed ?? randomInt(1, 1_000_000);
    const result = await runChaos({ seed, faults: opts.faults, epochs: opts.epochs, images: opts.images, workers: opts.workers, maxGapSteps: opts.maxGap, log: (l) => process.stdout.write(`${l}\n`) });
    process.stdout.write(`${chaosLine(result)}\n`);
    const ok = result.survived === result.faults && result.samplesLost === 0 && result.samplesDuplicated === 0 &&
      result.hashMismatches === 0 && result.finished && result.finalEqual && Object.values(result.kinds).every((n) => n > 0);
    process.exit(ok ? 0 : 1);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`chaos: ${(err as Error).message}\n`);
  process.exit(1);
});
