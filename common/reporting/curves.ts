/**
 * The training curves, as SVG (for the web and diffs) and PNG (for documents): training loss per
 * iteration, loss per epoch and top-1 accuracy per epoch, train against validation. Charts are
 * declared in Vega-Lite, rendered headless by Vega, and rasterised by resvg.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { ConfigError } from '../errors';
import type { EpochRecord, MetricsRecord, StepRecord } from './records';
import type { RunDirectory } from './run-directory';
import { findFonts, rendersText, svgToPng, type FontSet } from './svg-png';

/** The charts `writeCurves` draws; each is written as `<name>.svg` and `<name>.png`. */
export const CURVE_NAMES = ['loss-per-iteration', 'loss-per-epoch', 'accuracy-per-epoch'] as const;
export type CurveName = (typeof CURVE_NAMES)[number];

/** How curves are drawn. */
export interface CurveOptions {
  /** Width of the whole chart (axes and legend included), CSS pixels. @default 720 */
  width?: number;
  /** Height of the whole chart, CSS pixels. @default 360 */
  height?: number;
  /** PNG pixels per CSS pixel; 2 keeps the text sharp on high-density screens. @default 2 */
  pixelRatio?: number;
  /** Fonts for the PNG text. @default the first known sans-serif family found by `findFonts()` */
  fonts?: FontSet;
  /** Where problems that do not stop the drawing go. @default console.warn */
  warn?: (message: string) => void;
}

/** `CurveOptions` with every field filled. */
export interface ResolvedCurveOptions {
  width: number;
  height: number;
  pixelRatio: number;
  fonts: FontSet;
  warn: (message: string) => void;
}

/** Fills defaults and checks ranges; throws `ConfigError` naming the field. */
export function resolveCurveOptions(options: CurveOptions = {}): ResolvedCurveOptions {
  const width = options.width ?? 720;
  const height = options.height ?? 360;
  const pixelRatio = options.pixelRatio ?? 2;
  for (const [field, value, min] of [['width', width, 200], ['height', height, 150]] as const) {
    if (!Number.isInteger(value) || value < min) throw new ConfigError(`curves.${field}`, `expected an integer >= ${min} pixels, found ${value}`);
  }
  if (!(pixelRatio > 0 && pixelRatio <= 8)) throw new ConfigError('curves.pixelRatio', `expected a number in (0, 8], found ${pixelRatio}`);
  return {
    width, height, pixelRatio,
    fonts: options.fonts ?? findFonts(),
    warn: options.warn ?? ((message) => console.warn(`shardwise: ${message}`)),
  };
}

/** What `writeCurves` produced. */
export interface CurveFiles {
  /** Paths of the SVG files, one per chart. */
  svg: string[];
  /** Paths of the PNG files; empty when no font could draw text (see `warnings`). */
  png: string[];
  /** Everything that was passed to `warn`. */
  warnings: string[];
}

const SPLIT_COLORS = { train: '#1f77b4', validation: '#ff7f0e' } as const;
const STEP_COLORS = ['#9ecae1', '#08519c'] as const;
// Inside the plot, where curves rarely are (top-right for falling loss, bottom-right for rising
// accuracy), so the plot keeps the full width; labels are never truncated.
const LEGEND = { labelLimit: 0 } as const;
const LOSS_AXIS_TITLE = 'Cross-entropy loss (nats)';
const ACCURACY_AXIS_TITLE = 'Top-1 accuracy (%)';
const EPOCH_AXIS_TITLE = 'Epoch';
const ITERATION_AXIS_TITLE = 'Iteration (optimizer step)';
// Below this many steps the raw curve is readable on its own and a moving average adds nothing.
const MIN_STEPS_FOR_AVERAGE = 20;

/** Trailing mean over `window` points, so the smoothed curve never uses steps that had not happened yet. */
export function movingAverage(values: readonly number[], window: number): number[] {
  const out: number[] = [];
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    if (i >= window) sum -= values[i - window];
    out.push(sum / Math.min(i + 1, window));
  }
  return out;
}

/** The three Vega-Lite specs, from a run's records (other record types are ignored). */
export function curveSpecs(metrics: readonly MetricsRecord[], options: ResolvedCurveOptions): Record<CurveName, TopLevelSpec> {
  const { warn } = options;
  const steps = metrics.filter((r): r is StepRecord => r.type === 'step');
  const epochs = metrics.filter((r): r is EpochRecord => r.type === 'epoch');
  const finiteSteps = steps.filter((s) => Number.isFinite(s.loss));
  if (finiteSteps.length < steps.length) {
    warn(`${steps.length - finiteSteps.length} of ${steps.length} step losses are NaN or infinite and are left out of the loss-per-iteration chart`);
  }
  const frame = { width: options.width, height: options.height };
  return {
    'loss-per-iteration': lossPerIterationSpec(finiteSteps, frame),
    'loss-per-epoch': perEpochSpec(epochs, frame, {
      title: 'Loss per epoch', yTitle: LOSS_AXIS_TITLE, value: (s) => s.loss, zeroBased: false, warn,
    }),
    'accuracy-per-epoch': perEpochSpec(epochs, frame, {
      title: 'Top-1 accuracy per epoch', yTitle: ACCURACY_AXIS_TITLE, value: (s) => 100 * s.top1, zeroBased: true, warn,
    }),
  };
}

interface Frame { width: number; height: number }

// `fit` + `padding`: the chart including axes, titles and legend is exactly width x height.
function base(frame: Frame, title: string): Partial<TopLevelSpec> & Record<string, unknown> {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: frame.width,
    height: frame.height,
    autosize: { type: 'fit', contains: 'padding' },
    background: 'white',
    config: { axis: { titleFontSize: 12, labelFontSize: 11 }, legend: { titleFontSize: 12, labelFontSize: 11 }, title: { fontSize: 14 } },
  };
}

const MAX_ITERATION_POINTS = 2000;

/**
 * Every how many steps the loss-per-iteration chart draws a point, so that it draws at most
 * {@link MAX_ITERATION_POINTS} per series: 1 up to that many steps. The chart is redrawn after every
 * epoch, and laying out every step of a long run grew the draw's time and memory with the run
 * (a 5,000-step draw no longer fitted in 64 MiB); 2,000 points are about three per pixel of the default width.
 */
function iterationStride(steps: number): number {
  return Math.max(1, Math.ceil(steps / MAX_ITERATION_POINTS));
}

function lossPerIterationSpec(steps: readonly StepRecord[], frame: Frame): TopLevelSpec {
  const losses = steps.map((s) => s.loss);
  const stride = iterationStride(steps.length);
  // The moving average is taken over every step; only the points drawn are thinned.
  const drawn = (values: readonly number[], series: string) => values.flatMap((loss, i) =>
    i % stride === 0 ? [{ iteration: steps[i].globalStep + 1, loss, series }] : []);
  const rawLabel = stride === 1 ? 'loss of each step' : `loss of 1 step in ${stride}`;
  const rows: Array<{ iteration: number; loss: number; series: string }> = drawn(losses, rawLabel);
  const domain = [rawLabel];
  if (steps.length >= MIN_STEPS_FOR_AVERAGE) {
    const window = Math.min(200, Math.max(5, Math.round(steps.length / 25)));
    const avgLabel = `mean of last ${window} steps`;
    domain.push(avgLabel);
    rows.push(...drawn(movingAverage(losses, window), avgLabel));
  }
  return {
    ...base(frame, 'Training loss per iteration'),
    data: { values: rows },
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'iteration', type: 'quantitative', title: ITERATION_AXIS_TITLE, axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'loss', type: 'quantitative', title: LOSS_AXIS_TITLE, scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: null, scale: { domain, range: [...STEP_COLORS].slice(0, domain.length) }, legend: { ...LEGEND, orient: 'top-right' } },
    },
  } as TopLevelSpec;
}

interface PerEpochChart {
  title: string;
  yTitle: string;
  value: (split: { loss: number; top1: number }) => number;
  zeroBased: boolean;
  warn: (message: string) => void;
}

const MAX_EXPLICIT_EPOCH_TICKS = 20;

function epochAxis(epochs: readonly EpochRecord[]): Record<string, unknown> {
  const axis = { tickMinStep: 1, format: 'd' };
  return epochs.length <= MAX_EXPLICIT_EPOCH_TICKS ? { ...axis, values: epochs.map((e) => e.epoch + 1) } : axis;
}

function perEpochSpec(epochs: readonly EpochRecord[], frame: Frame, chart: PerEpochChart): TopLevelSpec {
  const rows: Array<{ epoch: number; value: number; split: string }> = [];
  let dropped = 0;
  for (const e of epochs) {
    for (const [split, metrics] of [['train', e.train], ['validation', e.val]] as const) {
      const value = chart.value(metrics);
      if (Number.isFinite(value)) rows.push({ epoch: e.epoch + 1, value, split });
      else dropped++;
    }
  }
  if (dropped > 0) chart.warn(`${dropped} NaN or infinite values are left out of the "${chart.title}" chart`);
  const layers: unknown[] = [{
    mark: { type: 'line', point: true, strokeWidth: 2 },
    encoding: {
      // Explicit ticks for short runs: vega still puts a rounded half-epoch tick between two epochs.
      x: { field: 'epoch', type: 'quantitative', title: EPOCH_AXIS_TITLE, axis: epochAxis(epochs) },
      y: { field: 'value', type: 'quantitative', title: chart.yTitle, scale: chart.zeroBased ? { domain: [0, 100] } : { zero: false } },
      color: {
        field: 'split', type: 'nominal', title: null,
        scale: { domain: Object.keys(SPLIT_COLORS), range: Object.values(SPLIT_COLORS) },
        legend: { ...LEGEND, orient: chart.zeroBased ? 'bottom-right' : 'top-right' },
      },
    },
  }];
  // Fine-tuning's key event: mark where the backbone started training, between the last frozen
  // epoch and the first unfrozen one.
  const unfrozen = epochs.findIndex((e, i) => i > 0 && epochs[i - 1].frozen && !e.frozen);
  if (unfrozen > 0) {
    const x = (epochs[unfrozen - 1].epoch + epochs[unfrozen].epoch) / 2 + 1;
    layers.push({
      data: { values: [{ x, label: 'backbone unfrozen' }] },
      layer: [
        { mark: { type: 'rule', strokeDash: [4, 4], color: '#666' }, encoding: { x: { field: 'x', type: 'quantitative' } } },
        {
          mark: { type: 'text', align: 'left', dx: 4, baseline: 'top', color: '#444' },
          encoding: { x: { field: 'x', type: 'quantitative' }, y: { value: 4 }, text: { field: 'label' } },
        },
      ],
    });
  }
  return { ...base(frame, chart.title), data: { values: rows }, layer: layers } as TopLevelSpec;
}

/** Renders a Vega-Lite spec to an SVG document, headless. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * Draws the curves of `metrics` into the run folder: `<chart>.svg` always, `<chart>.png` when the
 * fonts draw text. Without a usable font the PNGs are not written (a chart without axis titles or
 * legend misleads) and a warning says which Debian package provides one.
 */
export async function writeCurves(runDir: string | RunDirectory, metrics: readonly MetricsRecord[],
  options: CurveOptions = {}): Promise<CurveFiles> {
  const caller = resolveCurveOptions(options);
  const dir = typeof runDir === 'string' ? runDir : runDir.dir;
  const result: CurveFiles = { svg: [], png: [], warnings: [] };
  const warn = (message: string): void => {
    result.warnings.push(message);
    caller.warn(message);
  };
  const resolved = { ...caller, warn };
  const specs = curveSpecs(metrics, resolved);
  const drawText = rendersText(resolved.fonts);
  if (!drawText) {
    warn('no font renders text for the PNG curves, so only SVG is written; install a sans-serif font'
      + ' (Debian: apt-get install fonts-dejavu-core) or pass curves fonts.files');
  }
  for (const name of CURVE_NAMES) {
    const svg = await renderSvg(specs[name]);
    const svgPath = path.join(dir, `${name}.svg`);
    fs.writeFileSync(svgPath, svg);
    result.svg.push(svgPath);
    if (!drawText) continue;
    const pngPath = path.join(dir, `${name}.png`);
    fs.writeFileSync(pngPath, svgToPng(svg, resolved.fonts, resolved.pixelRatio).png);
    result.png.push(pngPath);
  }
  return result;
}
