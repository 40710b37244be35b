/**
 * What a trial's run folder says, whichever executor ran it: the epochs it finished for good (a local run's
 * epoch counts only once the checkpoint after it exists) and the epoch in progress. The Kubernetes executor
 * reads the same folders on the shared volume its pods write to.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readMetrics, type EpochRecord, type MetricsRecord, RUN_FILES } from '../common';
import type { CommittedEpochs, TrialRunRequest } from './executor';
import type { EpochResult } from './sweep-state';

/** The run folder of `request`, once its process has created it. */
export function trialRunDir(request: TrialRunRequest): string | undefined {
  if (request.workers !== 1) return fs.existsSync(path.join(request.runsDir, RUN_FILES.metrics)) ? request.runsDir : undefined;
  const entries = fs.existsSync(request.runsDir) ? fs.readdirSync(request.runsDir, { withFileTypes: true }) : [];
  const dirs = entries.filter((e) => e.isDirectory()).map((e) => path.join(request.runsDir, e.name));
  return dirs.length === 1 ? dirs[0] : undefined;
}

/** The epochs the run of `request` has finished for good, in order, with no gap. */
export function committedEpochs(request: TrialRunRequest): CommittedEpochs {
  const dir = trialRunDir(request);
  const checkpoints = new Map<number, string>();
  if (dir === undefined || !fs.existsSync(path.join(dir, RUN_FILES.metrics))) return { results: [], checkpoints };
  const epochs = readMetrics(dir, { allowTruncatedTail: true })
    .filter((r: MetricsRecord): r is EpochRecord => r.type === 'epoch' && r.epoch >= request.fromEpoch)
    .sort((a, b) => a.epoch - b.epoch);
  const results: Omit<EpochResult, 'ranBy'>[] = [];
  for (const e of epochs) {
    if (e.epoch !== request.fromEpoch + results.length) break;
    if (request.workers === 1) {
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

/** The epoch in progress and its step, from the last line of the run's metrics file, for the live table. */
export function runProgress(request: TrialRunRequest): { epoch: number; step: number } | undefined {
  const dir = trialRunDir(request);
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

/**
 * The command line of a trial stretch, after the `shardwise` command: the same locally and in a pod. A
 * local trial exits with the sweep (`--exit-with-parent`); a pod's parent is the container runtime, and
 * the sweep stops it by deleting its Job.
 */
export function trialArgs(r: TrialRunRequest, options: { exitWithParent: boolean }): string[] {
  const common = ['--job', r.jobFile, ...(r.dataDir ? ['--data', r.dataDir] : []), ...(r.backend ? ['--backend', r.backend] : [])];
  return r.workers === 1
    ? ['train', '--local', ...common, '--runs-dir', r.runsDir, '--epoch-checkpoints', ...(options.exitWithParent ? ['--exit-with-parent'] : []), '--until-epoch', String(r.untilEpoch),
      ...(r.resumeFrom ? ['--resume-from', r.resumeFrom] : [])]
    : ['cluster', ...common, '--workers', String(r.workers), '--run-dir', r.runsDir];
}
