/**
 * `make soak`: a long run of one job with many workers, printing `# ...` progress lines and one `soak ...`
 * line; exits 1 when a sample was lost or counted twice, or a replica disagreed. The memory and handle
 * figures are reported for the reader to judge against the bounds (RSS at the end at most 1.2x the
 * warm-up's, handles flat); they are printed, not asserted, because this machine's load moves them.
 */
import { Command, InvalidArgumentError } from 'commander';
import { intFlag } from '../support/int-flag';
import { runSoak, soakCompanionLines, soakLine } from './run-soak';

const whole = intFlag(1);

const program = new Command('soak')
  .option('--workers <n>', 'workers (one micro-batch each per step)', whole, 64)
  .option('--hosts <n>', 'processes the workers are spread over', whole, 8)
  .option('--steps <n>', 'training steps (rounded up to whole epochs)', whole, 10_000)
  .option('--warmup <n>', 'steps before the warm-up figures', whole, 500)
  .option('--steps-per-epoch <n>', 'steps per epoch (each epoch ends with a validation pass)', whole, 50)
  .option('--coordinator-heap <mb>', "the coordinator's old-generation cap in MiB, 0 for V8's default (default: the launcher's rule)", intFlag(0))
  .action(async (opts) => {
    if (opts.warmup >= opts.steps) throw new InvalidArgumentError(`--warmup ${opts.warmup} must be below --steps ${opts.steps}`);
    const result = await runSoak({ workers: opts.workers, hosts: opts.hosts, steps: opts.steps, warmupSteps: opts.warmup, stepsPerEpoch: opts.stepsPerEpoch,
      coordinatorHeapMb: opts.coordinatorHeap, log: (l) => process.stdout.write(`${l}\n`) });
    for (const line of soakCompanionLines(result)) process.stdout.write(`${line}\n`);
    process.stdout.write(`${soakLine(result)}\n`);
    process.exit(result.samplesLost === 0 && result.samplesDuplicated === 0 && result.hashAgree ? 0 : 1);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`soak: ${(err as Error).message}\n`);
  process.exit(1);
});
