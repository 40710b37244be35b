/**
 * The report's pictures, declared in Vega-Lite and drawn by the same renderer as the run curves
 * (`renderSvg`, then resvg for the PNG): every trial's validation curve on one chart, and the objective
 * against each parameter.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { findFonts, renderSvg, rendersText, svgToPng } from '../common';
import { objectiveValue } from './early-stopping';
import type { SweepSpec } from './sweep-spec';
import type { SweepState } from './sweep-state';
import { formatValue } from './results-table';

const FRAME = { width: 720, height: 380 };
const STATES = ['completed', 'stopped', 'failed', 'running', 'pending'] as const;

/** Every trial's objective per epoch; stopped trials dashed, forked epochs drawn as the trial's own. */
export function curvesSpec(spec: Pick<SweepSpec, 'objective' | 'name'>, state: SweepState): TopLevelSpec {
  const rows = state.trials.flatMap((t) => t.results.map((r) => ({
    trial: t.id, epoch: r.epoch + 1, value: objectiveValue(r, spec.objective.metric), state: t.state,
  })));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: `${spec.name}: validation ${spec.objective.metric.slice(4)} per epoch, every trial`,
      subtitle: ['solid: ran to the end; dashed: stopped early or failed', 'trials sharing a prefix overlap on its epochs (trained once)'],
    },
    ...FRAME,
    autosize: { type: 'fit', contains: 'padding' },
    background: 'white',
    data: { values: rows },
    mark: { type: 'line', point: true, strokeWidth: 1.8 },
    encoding: {
      // Explicit ticks: vega would put rounded half-epoch ticks between epochs of a short sweep.
      x: { field: 'epoch', type: 'quantitative', title: 'Epoch', axis: { values: [...new Set(rows.map((r) => r.epoch))], format: 'd' } },
      y: { field: 'value', type: 'quantitative', title: spec.objective.metric, scale: { zero: false } },
      color: { field: 'trial', type: 'nominal', title: 'trial', legend: { labelLimit: 0, columns: state.trials.length > 16 ? 2 : 1 } },
      // Solid for trials that ran to the end, dashed for the rest; the legend lists only states that occur.
      strokeDash: {
        field: 'state', type: 'nominal', title: 'state',
        scale: { domain: STATES.filter((s) => rows.some((r) => r.state === s)), range: [[1, 0], [6, 4], [2, 2], [8, 2, 2, 2], [1, 3]] },
        // resvg draws no stroke-only legend symbols, so the subtitle says what the dashes mean.
        legend: null,
      },
    },
  } as TopLevelSpec;
}

/** One scatter per parameter: the trial's last objective against its value of the parameter. */
export function paramsSpec(spec: Pick<SweepSpec, 'objective' | 'name' | 'parameters'>, state: SweepState): TopLevelSpec {
  const done = state.trials.filter((t) => t.results.length > 0);
  const panels = spec.parameters.map(({ path: p }) => {
    const numeric = done.every((t) => typeof t.params[p] === 'number');
    const logScale = spec.parameters.find((x) => x.path === p)?.domain.type === 'log-uniform';
    return {
      title: p,
      width: 260,
      height: 220,
      data: {
        values: done.map((t) => ({
          x: numeric ? t.params[p] : formatValue(t.params[p]), value: objectiveValue(t.results.at(-1)!, spec.objective.metric), state: t.state, trial: t.id,
        })),
      },
      mark: { type: 'point', filled: true, size: 70 },
      encoding: {
        x: { field: 'x', type: numeric ? 'quantitative' : 'nominal', title: p, ...(logScale ? { scale: { type: 'log' } } : numeric ? { scale: { zero: false } } : {}) },
        y: { field: 'value', type: 'quantitative', title: `${spec.objective.metric} (last epoch)`, scale: { zero: false } },
        color: { field: 'state', type: 'nominal', scale: { domain: ['completed', 'stopped', 'failed'], range: ['#1f77b4', '#ff7f0e', '#d62728'] } },
      },
    };
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `${spec.name}: ${spec.objective.metric} against each parameter`,
    background: 'white',
    hconcat: panels,
  } as unknown as TopLevelSpec;
}

/** Writes `<name>.svg` and, when a font draws text, `<name>.png`; returns the files written. */
export async function writeChart(dir: string, name: string, chart: TopLevelSpec): Promise<string[]> {
  const svg = await renderSvg(chart);
  const files = [path.join(dir, `${name}.svg`)];
  fs.writeFileSync(files[0], svg);
  const fonts = findFonts();
  if (rendersText(fonts)) {
    files.push(path.join(dir, `${name}.png`));
    fs.writeFileSync(files[1], svgToPng(svg, fonts, 2).png);
  }
  return files;
}
