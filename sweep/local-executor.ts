/**
 * The local executor: each stretch of a trial is a child process. A one-worker trial is
 * `shardwise train --local` (one process, epoch checkpoints on, started from a checkpoint and stopped at
 * the next rung boundary); a multi-worker trial is `shardwise cluster` over its whole length, in its own
 * run folder so that a restarted sweep resumes it from the cluster's own checkpoints.
 *
 * How many run at once: a one-worker trial needs one core; a cluster of W workers needs W + 1 (the
 * coordinator computes too), capped at the machine. Trials start while their cores fit in the free cores
 * (and `budget.maxConcurrentTrials` allows); one trial always may start, so on 2 cores a 2-worker trial
 * takes the whole machine and runs alone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readMetrics, type EpochRecord, type MetricsRecord, RUN_FILES, THREADS_ENV_VAR } from '../common';
import { defaultShardwiseCommand, ManagedChild } from '../launcher';
import type { EpochResult } from './sweep-state';

/** Cores one trial occupies on a machine of `cores` cores. */
export function trialCores(workers: number, cores: number): number {
  return Math.min(cores, workers === 1 ? 1 : workers + 1);
}

/** What to run: one stretch of a trial. */
export interface TrialRunRequest {
  trialId: string;
  jobFile: string;
  workers: number;
  /** Epochs done before this run (0: from scratch). */
  fromEpoch: number;
  /** The epoch checkpoint to start from, when `fromEpoch` > 0 (local runs). */
  resumeFrom?: string;
  /** Stop once this many epochs are done. */
  untilEpoch: number;
  /** Local runs: parent of the run folder the trainer creates. Cluster runs: the run folder itself. */
  runsDir: string;
  dataDir?: string;
  backend?: string;
}

/** A running stretch of a trial. */
export class TrialRun {
  readonly child: ManagedChild;

  private constructor(readonly request: TrialRunRequest) {
    const shardwise = defaultShardwiseCommand();
    const r = request;
    const common = ['--job', r.jobFile, ...(r.dataDir ? ['--data', r.dataDir] : []), ...(r.backend ? ['--backend', r.backend] : [])];
    const args = r.workers === 1
      ? ['train', '--local', ...common, '--runs-dir', r.runsDir, '--epoch-checkpoints', '--exit-with-parent', '--until-epoch', String(r.untilEpoch),
        ...(r.resumeFrom ? ['--resume-from', r.resumeFrom] : [])]
      : ['cluster', ...common, '--workers', String(r.workers), '--run-dir', r.runsDir];
    fs.mkdirSync(r.runsDir, { recursive: true });
    this.child = ManagedChild.spawn({
      name: `trial ${r.trialId}`,
      command: shardwise.command,
      args: [...shardwise.args, ...args],
      // Trials run side by side on one machine: one compute thread each unless OMP_NUM_THREADS says otherwise.
      env: { [THREADS_ENV_VAR]: '1', ...process.env },
      // Own process group: a Ctrl-C reaches the sweep, which stops its trials in order.
      detached: true,
      historyLines: 200,
    });
  }

  /** Starts the process. */
  static start(request: TrialRunRequest): TrialRun {
    return new TrialRun(request);
  }

  /** The run folder, once the process has created it. */
  runDir(): string | undefined {
    if (this.request.workers !== 1) return fs.existsSync(path.join(this.request.runsDir, RUN_FILES.metrics)) ? this.request.runsDir : undefined;
    const entries = fs.existsSync(this.request.runsDir) ? fs.readdirSync(this.request.runsDir, { withFileTypes: true }) : [];
    const dirs = entries.filter((e) => e.isDirectory()).map((e) => path.join(this.request.runsDir, e.name));
    return dirs.length === 1 ? dirs[0] : undefined;
  }

  /**
   * The epochs this run has finished for good, from `fromEpoch` on: a local run's epoch counts only once
   * the checkpoint after it exists (so results and checkpoints never disagree after a crash).
   */
  committed(): { results: Omit<EpochResult, 'ranBy'>[]; checkpoints: Map<number, string> } {
    const dir = this.runDir();
    const checkpoints = new Map<number, string>();
    if (dir === undefined || !fs.existsSync(path.join(dir, RUN_FILES.metrics))) return { results: [], checkpoints };
    const epochs = readMetrics(dir, { allowTruncatedTail: true })
      .filter((r: MetricsRecord): r is EpochRecord => r.type === 'epoch' && r.epoch >= this.request.fromEpoch)
      .sort((a, b) => a.epoch - b.epoch);
    const results: Omit<EpochResult, 'ranBy'>[] = [];
    for (const e of epochs) {
      if (e.epoch !== this.request.fromEpoch + results.length) break;
      if (this.request.workers === 1) {
        const ckpt = path.join(dir, RUN_FILES.checkpoints, `epoch-${String(e.epoch).padStart(3, '0')}`);
        if (!fs.existsSync(path.join(ckpt, 'trainer-state.json'))) break;
        checkpoints.set(e.epoch + 1, ckpt);
      }
      results.push({
        epoch: e.epoch, val: { loss: e.val.loss, top1: e.val.top1, top5: e.val.top5 }, train: { loss: e.train.loss, top1: e.train.top1 },
        ...(e.test ? { test: { loss: e.test.loss, top1: e.test.top1, top5: e.test.top5 } } : {}),
      });
    }
    return { results, checkpoints };
  }

  /** The epoch in progress and its step, for the live table. */
  progress(): { epoch: number; step: number } | undefined {
    const dir = this.runDir();
    if (dir === undefined) return undefined;
    try {
      const text = fs.readFileSync(path.join(dir, RUN_FILES.metrics), 'utf8');
      const last = text.slice(text.lastIndexOf('\n', text.length - 2) + 1);
      const record = JSON.parse(last) as { epoch?: number; step?: number };
      return record.epoch === undefined ? undefined : { epoch: record.epoch, step: record.step ?? 0 };
    } catch {
      return undefined;
    }
  }

  /** The last lines the process printed, for a failure message. */
  errorTail(): string {
    const lines = this.child.lines().filter((l) => l.trim() !== '' && !/^\s*(epoch \d|\[|█|░)/.test(l));
    return lines.slice(-6).join(' | ').slice(-800);
  }
}
