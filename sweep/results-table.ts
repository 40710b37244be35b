/**
 * The sweep as a table: one row per trial with its parameters, epochs, objective, state and how it got
 * there (forked from which trial, stopped at which rung). The live view, `results.md` and `results.csv`
 * are all drawn from these rows.
 */
import { objectiveValue } from './early-stopping';
import type { SweepSpec } from './sweep-spec';
import { type SweepState, trainedEpochs, type TrialRecord } from './sweep-state';

/** One trial's row. */
export interface TrialRow {
  trial: string;
  params: Record<string, string>;
  /** `done/total` epochs, with the epoch in progress when running. */
  epoch: string;
  /** The objective after the last epoch done, when there is one. */
  metric: number | undefined;
  /** The same metric on the test set (`data.testSet`), reported only. */
  test: number | undefined;
  state: string;
  note: string;
}

/** Parameter values as short strings (4 significant digits for reals). */
export function formatValue(v: unknown): string {
  if (typeof v === 'number' && !Number.isInteger(v)) return Number(v.toPrecision(4)).toString();
  return String(v);
}

/** Rows of every trial; `live` gives the epoch and step of running trials. */
export function trialRows(spec: Pick<SweepSpec, 'objective'>, state: SweepState,
  live: ReadonlyMap<string, { epoch: number; step: number }> = new Map()): TrialRow[] {
  return state.trials.map((t) => {
    const last = t.results.at(-1);
    const progress = live.get(t.id);
    const epoch = t.state === 'running' && progress ? `${progress.epoch + 1}/${t.epochs} (step ${progress.step + 1})` : `${t.results.length}/${t.epochs}`;
    return {
      trial: t.id,
      params: Object.fromEntries(Object.entries(t.params).map(([k, v]) => [k, formatValue(v)])),
      epoch,
      metric: last ? objectiveValue(last, spec.objective.metric) : undefined,
      test: last?.test ? last.test[spec.objective.metric.slice('val.'.length) as 'loss' | 'top1' | 'top5'] : undefined,
      state: t.state,
      note: noteOf(t),
    };
  });
}

function noteOf(t: TrialRecord): string {
  const parts: string[] = [];
  if (t.fork) parts.push(`shares ${t.fork.epochs} epoch${t.fork.epochs > 1 ? 's' : ''} with ${t.fork.from}`);
  const stop = t.decisions.find((d) => d.action === 'stop');
  if (stop) parts.push(`stopped at rung ${stop.rung}`);
  if (t.error) parts.push(t.error.slice(0, 120));
  if (t.fork || stop) parts.push(`trained ${trainedEpochs(t)}`);
  return parts.join('; ');
}

/** The rows as aligned text lines, a header first. */
export function formatTable(spec: Pick<SweepSpec, 'objective'>, rows: readonly TrialRow[]): string[] {
  const paramNames = rows.length > 0 ? Object.keys(rows[0].params) : [];
  const withTest = rows.some((r) => r.test !== undefined);
  const testName = `test.${spec.objective.metric.slice('val.'.length)} (reported only)`;
  const fmt = (x: number | undefined): string => (x === undefined ? '-' : x.toFixed(4));
  const header = ['trial', ...paramNames.map(shortName), 'epoch', spec.objective.metric, ...(withTest ? [testName] : []), 'state', 'note'];
  const cells = rows.map((r) => [
    r.trial, ...paramNames.map((p) => r.params[p]), r.epoch, fmt(r.metric), ...(withTest ? [fmt(r.test)] : []), r.state, r.note,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]): string => c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), ...cells.map(line)];
}

// `paramGroups.head.lrMultiplier` -> `head.lrMultiplier`: the last two segments name it well enough.
function shortName(p: string): string {
  return p.split('.').slice(-2).join('.');
}
