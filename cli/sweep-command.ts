import { Command, Option } from 'commander';
import { createExecutor, FailureBudgetError, LiveTable, loadSweepSpec, readSweepState, runSweep, type SweepOutcome, writeSweepReport } from '../sweep';
import { backendOption, log } from './options';

/** `shardwise sweep`: runs or continues a hyperparameter sweep and writes its report. */
export function sweepCommand(): Command {
  return new Command('sweep')
    .description('run (or continue) a hyperparameter sweep described by a sweep spec, then write its report')
    .requiredOption('--spec <file>', 'sweep spec (YAML)')
    .option('--data <dir>', 'CIFAR-10 folder for every trial (default: data.dir, CIFAR10_DIR, then download)')
    .addOption(backendOption())
    .addOption(new Option('--executor <type>', 'where trials run: local processes, or Jobs through the Kubernetes API (default: the spec\'s executor.type)')
      .choices(['local', 'kubernetes']))
    .option('--kubeconfig <file>', 'kubeconfig of the Kubernetes executor (default: $KUBECONFIG, ~/.kube/config, then the pod\'s ServiceAccount)')
    .option('--namespace <ns>', 'namespace of the trial Jobs (default: executor.kubernetes.namespace, then the kubeconfig context\'s)')
    .action(async (opts: { spec: string; data?: string; backend: string; executor?: 'local' | 'kubernetes'; kubeconfig?: string; namespace?: string }) => {
      const spec = loadSweepSpec(opts.spec);
      const choice = { type: opts.executor, kubeconfig: opts.kubeconfig, namespace: opts.namespace, dataDir: opts.data };
      log(`sweep ${spec.name}: ${spec.budget.maxTrials} trials at most, folder ${spec.dir}, ${choice.type ?? spec.executor} executor`);
      const table = new LiveTable(spec);
      const controller = new AbortController();
      const onSigint = (): void => {
        log('\nSIGINT: stopping the running trials at their last checkpoint; run the same command again to continue');
        controller.abort();
      };
      process.once('SIGINT', onSigint);
      process.once('SIGTERM', onSigint);
      let failure: unknown;
      let outcome: SweepOutcome | undefined;
      try {
        outcome = await runSweep(spec, {
          dataDir: opts.data, backend: opts.backend === 'auto' ? undefined : opts.backend, signal: controller.signal,
          executor: () => createExecutor(spec, choice),
          onChange: (state, live) => table.update(state, live),
        });
      } catch (err) {
        if (!(err instanceof FailureBudgetError)) throw err;
        failure = err;
      } finally {
        process.off('SIGINT', onSigint);
        process.off('SIGTERM', onSigint);
      }
      const state = outcome?.state ?? readSweepState(spec.dir);
      if (state) {
        table.update(state, new Map());
        process.stdout.write(`sweep report: ${await writeSweepReport(spec, state)}\n`);
      }
      if (failure !== undefined) throw failure;
      if (outcome?.interrupted) {
        log(`sweep ${spec.name} interrupted; finished trials are kept, run the same command again to continue`);
        process.exitCode = 130;
      }
    });
}
