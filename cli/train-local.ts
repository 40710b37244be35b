import * as path from 'node:path';
import {
  buildModel,
  disposeModelParts,
  initBackend,
  type JobSpec,
  loadJobSpec,
  LocalTrainer,
  loadTrainVal,
  restoreEpochCheckpoint,
  RunDirectory,
  RunRecorder,
  resolveThreads,
  saveEpochCheckpoint,
  shareThreadsFor,
  stepsPerEpoch,
  weightsHash,
  type BackendName,
} from '../common';

/** Flags of `shardwise train --local`. */
export interface TrainLocalOptions {
  job: string;
  /** CIFAR-10 folder; overrides data.dir. */
  data?: string;
  /** `key.path=value` overrides of the job spec. */
  set: string[];
  /** Overrides output.runsDir. */
  runsDir?: string;
  backend?: 'auto' | BackendName;
  /** An epoch checkpoint (`checkpoints/epoch-NNN` of an earlier run) to continue from. */
  resumeFrom?: string;
  /** Stop once this many epochs are done. @default training.epochs */
  untilEpoch?: number;
  /** Keep a training checkpoint after every epoch in `checkpoints/epoch-NNN` (what sweeps resume and fork from). */
  epochCheckpoints?: boolean;
  /** Threads computing each step's micro-batches. @default OMP_NUM_THREADS, else the cores given (resolveThreads) */
  threads?: number;
  /** Stop (at the next step) when the parent process dies: a sweep killed with SIGKILL leaves no orphan trials. */
  exitWithParent?: boolean;
}

/**
 * The single-process fine-tune: the reference the distributed trainer must match. Writes a run
 * directory with the job spec, metrics, curves, the final checkpoint and a summary, and returns its path.
 */
export async function trainLocal(options: TrainLocalOptions, log: (line: string) => void): Promise<string> {
  const spec = withFlags(loadJobSpec(options.job, options.set), options);
  const backend = await initBackend({ prefer: options.backend, log });
  const threads = resolveThreads(options.threads);
  const pool = shareThreadsFor(threads.threads, backend.name);
  log(`compute: ${pool?.count ?? 1} thread${pool ? 's' : ''} (${threads.threads} from ${threads.source})`);
  // The model first: a bad model fails in seconds, before a possibly long dataset download.
  const parts = await buildModel(spec.model, spec.seed);
  const data = await loadTrainVal(spec.data, spec.seed, { log }).catch((err: unknown) => {
    disposeModelParts(parts);
    throw err;
  });
  log(`data: ${data.train.count} training and ${data.val.count} validation images` +
    `${data.test ? `, ${data.test.count} test images (test_batch.bin, reported only)` : ''} from ${data.dir}`);
  const run = RunDirectory.create(spec.output.runsDir, spec.name);
  run.writeJobSpec(spec);
  log(`run directory: ${run.dir}`);
  const recorder = new RunRecorder({
    run,
    parts,
    epochs: spec.training.epochs,
    stepsPerEpoch: stepsPerEpoch(data.train.count, spec.training.batchSize),
    checkpointEveryEpochs: spec.output.checkpointEveryEpochs,
  });
  const trainer = new LocalTrainer(spec, {
    train: data.train,
    val: data.val,
    test: data.test,
    parts,
    onEvent: (event) => recorder.onEvent(event),
    untilEpoch: options.untilEpoch,
    signal: options.exitWithParent ? parentDeath() : undefined,
    onEpochEnd: options.epochCheckpoints ? (state) => saveEpochCheckpoint(state, run.checkpointDir(state.epoch)) : undefined,
    threads: pool,
  });
  try {
    if (options.resumeFrom !== undefined) {
      const from = restoreEpochCheckpoint(trainer.state, options.resumeFrom);
      log(`resumed after epoch ${from.epochsDone} from ${options.resumeFrom} (weights ${from.weightsHash})`);
    }
    const result = await trainer.run();
    await recorder.close();
    const { final } = result;
    run.writeSummary({
      backend: backend.name, seconds: result.seconds, globalSteps: result.globalSteps, final, weightsHash: weightsHash(parts),
    });
    log(
      `done in ${result.seconds.toFixed(0)} s: validation top-1 ${pct(final.val?.top1)}, top-5 ${pct(final.val?.top5)}, ` +
        `loss ${final.val?.loss.toFixed(4) ?? 'n/a'}; model in ${path.join(run.dir, 'checkpoint')}`,
    );
    return run.dir;
  } finally {
    await recorder.close().catch(() => undefined);
    trainer.dispose();
    await pool?.close();
    disposeModelParts(parts);
  }
}

// A process re-parented (to init or a subreaper) has lost its parent; polled, since Node has no PDEATHSIG.
function parentDeath(): AbortSignal {
  const controller = new AbortController();
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) controller.abort(new Error(`parent process ${parent} is gone; stopping at the last epoch checkpoint`));
  }, 500);
  timer.unref();
  return controller.signal;
}

function withFlags(spec: JobSpec, options: TrainLocalOptions): JobSpec {
  return {
    ...spec,
    data: { ...spec.data, dir: options.data ?? spec.data.dir },
    output: { ...spec.output, runsDir: options.runsDir ?? spec.output.runsDir },
  };
}

function pct(fraction: number | undefined): string {
  return fraction === undefined ? 'n/a' : `${(100 * fraction).toFixed(1)}%`;
}
