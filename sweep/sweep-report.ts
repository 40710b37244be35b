/**
 * The report a finished (or interrupted) sweep leaves in `<sweep>/report/`: `results.csv` and
 * `results.md` (the table, the best trial, the trial-epochs saved, the early-stopping decisions), the two
 * pictures, and `best/` with the best trial's job spec and checkpoints.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { objectiveValue, score } from './early-stopping';
import { curvesSpec, paramsSpec, writeChart } from './report-charts';
import { formatTable, trialRows } from './results-table';
import type { SweepSpec } from './sweep-spec';
import { type SweepState, trainedEpochs, type TrialRecord } from './sweep-state';

/** Trial-epochs a plain grid would run against what ran. */
export interface SweepSavings {
  trials: number;
  /** Every trial's `training.epochs`, summed: no early stopping, no sharing. */
  naiveTrialEpochs: number;
  /** Epochs the trials' own processes trained. */
  runTrialEpochs: number;
  /** Epochs taken over from a shared prefix instead of trained. */
  sharedTrialEpochs: number;
  /** Epochs early stopping skipped. */
  stoppedTrialEpochs: number;
  savedFraction: number;
}

/** How much compute sharing and early stopping saved. */
export function sweepSavings(state: SweepState): SweepSavings {
  const naive = state.trials.reduce((n, t) => n + t.epochs, 0);
  const run = state.trials.reduce((n, t) => n + trainedEpochs(t), 0);
  const shared = state.trials.reduce((n, t) => n + t.results.filter((r) => r.ranBy !== t.id).length, 0);
  const stopped = state.trials.filter((t) => t.state === 'stopped').reduce((n, t) => n + t.epochs - t.results.length, 0);
  return { trials: state.trials.length, naiveTrialEpochs: naive, runTrialEpochs: run, sharedTrialEpochs: shared,
    stoppedTrialEpochs: stopped, savedFraction: naive === 0 ? 0 : 1 - run / naive };
}

/** The best completed trial by its last epoch's objective (any trial with results when none completed). */
export function bestTrial(spec: Pick<SweepSpec, 'objective'>, state: SweepState): TrialRecord | undefined {
  const completed = state.trials.filter((t) => t.state === 'completed' && t.results.length > 0);
  const pool = completed.length > 0 ? completed : state.trials.filter((t) => t.results.length > 0);
  let best: TrialRecord | undefined;
  for (const t of pool) {
    if (best === undefined || score(t.results.at(-1)!, spec.objective) > score(best.results.at(-1)!, spec.objective)) best = t;
  }
  return best;
}

/** Writes the report folder and returns its path. */
export async function writeSweepReport(spec: SweepSpec, state: SweepState): Promise<string> {
  const dir = path.join(spec.dir, 'report');
  fs.mkdirSync(dir, { recursive: true });
  const savings = sweepSavings(state);
  const best = bestTrial(spec, state);
  fs.writeFileSync(path.join(dir, 'results.csv'), resultsCsv(spec, state));
  await writeChart(dir, 'validation-curves', curvesSpec(spec, state));
  await writeChart(dir, 'params-vs-metric', paramsSpec(spec, state));
  if (best) copyBest(best, path.join(dir, 'best'));
  fs.writeFileSync(path.join(dir, 'results.md'), resultsMarkdown(spec, state, savings, best));
  return dir;
}

function resultsCsv(spec: SweepSpec, state: SweepState): string {
  const params = spec.parameters.map((p) => p.path);
  const header = ['trial', ...params, 'state', 'epochs_done', 'epochs', 'trained_epochs', 'shared_from', 'shared_epochs',
    'stopped_at_rung', 'val_loss', 'val_top1', 'val_top5', 'objective', 'test_loss', 'test_top1', 'test_top5', 'error'];
  const rows = state.trials.map((t) => {
    const last = t.results.at(-1);
    return [t.id, ...params.map((p) => String(t.params[p])), t.state, t.results.length, t.epochs, trainedEpochs(t), t.fork?.from ?? '',
      t.fork?.epochs ?? 0, t.decisions.find((d) => d.action === 'stop')?.rung ?? '', last?.val.loss ?? '', last?.val.top1 ?? '',
      last?.val.top5 ?? '', last ? objectiveValue(last, spec.objective.metric) : '', last?.test?.loss ?? '', last?.test?.top1 ?? '',
      last?.test?.top5 ?? '', t.error ?? ''];
  });
  return [header, ...rows].map((r) => r.map(csvCell).join(',')).join('\n') + '\n';
}

function csvCell(v: unknown): string {
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function resultsMarkdown(spec: SweepSpec, state: SweepState, s: SweepSavings, best: TrialRecord | undefined): string {
  const rows = formatTable(spec, trialRows(spec, state)).map((l) => l.split(/ {2,}/));
  const md = (cells: string[][]): string[] => [
    `| ${cells[0].join(' | ')} |`, `| ${cells[0].map(() => '---').join(' | ')} |`, ...cells.slice(1).map((c) => `| ${c.join(' | ')} |`),
  ];
  const decisions = state.trials.flatMap((t) => t.decisions.map((d) => [t.id, String(d.rung), d.value.toFixed(4), d.action, d.reason]));
  const lines = [
    `# Sweep ${spec.name}`,
    '',
    `Objective: ${spec.objective.direction} ${spec.objective.metric}, computed on the validation split (images held out of ` +
      `the training batches by data.valFraction), last epoch. ` +
      (state.trials.some((t) => t.results.some((r) => r.test))
        ? 'Test-set metrics (CIFAR-10 test_batch.bin) are reported beside it and were never used to choose. '
        : '') +
      `Search: ${spec.algorithm.type}; early stopping: ${spec.earlyStopping.type}; shared prefixes: ${spec.sharedPrefixes ? 'on' : 'off'}.`,
    '',
    best
      ? `**Best trial: ${best.id}** (${Object.entries(best.params).map(([k, v]) => `${k}=${v}`).join(', ')}): ${spec.objective.metric} ` +
        `${objectiveValue(best.results.at(-1)!, spec.objective.metric).toFixed(4)} after ${best.results.length} epochs. Its job spec and checkpoint are in \`best/\`.`
      : 'No trial finished an epoch.',
    '',
    `Trial-epochs: a plain grid would train ${s.naiveTrialEpochs}; this sweep trained ${s.runTrialEpochs} ` +
      `(${s.sharedTrialEpochs} taken over from shared prefixes, ${s.stoppedTrialEpochs} skipped by early stopping): ` +
      `${(100 * s.savedFraction).toFixed(1)}% saved.`,
    ...(state.stopReason ? ['', `Stopped early: ${state.stopReason}`] : []),
    '',
    '## Trials',
    '',
    ...md(rows),
    '',
    '![validation curves](validation-curves.svg)',
    '',
    '![parameters against the objective](params-vs-metric.svg)',
    '',
    '## Early-stopping decisions',
    '',
    ...(decisions.length > 0 ? md([['trial', 'rung (epochs)', spec.objective.metric, 'decision', 'why'], ...decisions]) : ['None were taken.']),
    '',
  ];
  return lines.join('\n');
}

function copyBest(best: TrialRecord, dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(best.jobFile, path.join(dir, 'job.yaml'));
  const training = best.checkpoints[best.results.length];
  if (training) fs.cpSync(training, path.join(dir, 'training-checkpoint'), { recursive: true });
  // The self-contained model (raw pixels in, probabilities out) of the run that finished the trial.
  const lastRun = trialModelDir(best);
  if (lastRun) fs.cpSync(lastRun, path.join(dir, 'model'), { recursive: true });
}

/** The self-contained model (`model.json`) of the last run of `trial` that left one. */
export function trialModelDir(trial: Pick<TrialRecord, 'runDirs'>): string | undefined {
  return [...trial.runDirs].reverse().map((d) => findModel(d)).find((m) => m !== undefined);
}

function findModel(runsDir: string): string | undefined {
  if (!fs.existsSync(runsDir)) return undefined;
  const candidates = [runsDir, ...fs.readdirSync(runsDir).map((d) => path.join(runsDir, d))].map((d) => path.join(d, 'checkpoint'));
  return candidates.find((c) => fs.existsSync(path.join(c, 'model.json')));
}
