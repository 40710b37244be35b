import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { ConfigError } from '../common/errors';
import { Rng } from '../common/random';
import {
  CURVE_NAMES, RunDirectory, curveSpecs, findFonts, movingAverage, rendersText, resolveCurveOptions, svgToPng,
  writeCurves, type FontSet, type MetricsRecord,
} from '../common/reporting';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const NO_FONTS: FontSet = { files: [], loadSystemFonts: false };
const WIDTH = 640;
const HEIGHT = 320;

/** A plausible fine-tuning run: loss falls, accuracy rises, backbone frozen for the first 2 epochs. */
function syntheticRun(epochs: number, stepsPerEpoch: number, seed = 1): MetricsRecord[] {
  const rng = new Rng(seed);
  const records: MetricsRecord[] = [];
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let step = 0; step < stepsPerEpoch; step++) {
      const globalStep = epoch * stepsPerEpoch + step;
      const loss = 2 * Math.exp(-globalStep / 100) + 0.3 + rng.uniform(-0.1, 0.1);
      records.push({ type: 'step', epoch, step, globalStep, loss, lr: { backbone: 1e-4, head: 1e-3 }, samplesPerSec: 300 });
    }
    const top1 = 0.9 - 0.8 * Math.exp(-epoch / 2);
    records.push({
      type: 'epoch', epoch, frozen: epoch < 2, seconds: 10, lr: { backbone: 1e-4, head: 1e-3 },
      train: { loss: 2 * Math.exp(-epoch / 2), top1, top5: 0.99 },
      val: { loss: 2.1 * Math.exp(-epoch / 2), top1: top1 - 0.05, top5: 0.97 },
    });
  }
  return records;
}

function pngSize(png: Buffer): { width: number; height: number } {
  assert.ok(png.subarray(0, 8).equals(PNG_SIGNATURE), 'PNG signature');
  assert.equal(png.toString('latin1', 12, 16), 'IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

/** Parses the SVG with resvg's strict XML parser and returns its declared size. */
function parseSvg(svg: string): { width: number; height: number } {
  const parsed = new Resvg(svg, { font: { loadSystemFonts: false } });
  return { width: parsed.width, height: parsed.height };
}

/** RGBA pixels of a PNG, decoded by resvg drawing it as an image at its own size. */
function decodePng(png: Buffer): Buffer {
  const { width, height } = pngSize(png);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">`
    + `<image width="${width}" height="${height}" href="data:image/png;base64,${png.toString('base64')}"/></svg>`;
  return new Resvg(svg, { font: { loadSystemFonts: false } }).render().pixels;
}

function differingPixels(a: Buffer, b: Buffer): number {
  assert.equal(a.length, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i += 4) if (a.readUInt32BE(i) !== b.readUInt32BE(i)) n++;
  return n;
}

describe('curves', () => {
  let tmp: string;
  beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-curves-')); });
  afterEach(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

  it('the SVG check rejects malformed XML (so the checks below can fail)', () => {
    assert.throws(() => parseSvg('<svg xmlns="http://www.w3.org/2000/svg"><g></svg>'));
  });

  it('writes the three charts as valid SVG with axis titles and legend, and as PNG of the configured size', async function () {
    const fonts = findFonts();
    if (!rendersText(fonts)) this.skip(); // covered by the no-font test; `make` installs fonts-dejavu-core
    const run = RunDirectory.create(tmp, 'curves');
    const warnings: string[] = [];
    const files = await writeCurves(run, syntheticRun(6, 30), { width: WIDTH, height: HEIGHT, pixelRatio: 1, warn: (m) => warnings.push(m) });
    assert.deepEqual(warnings, []);
    assert.deepEqual(files.svg, CURVE_NAMES.map((n) => path.join(run.dir, `${n}.svg`)));
    assert.deepEqual(files.png, CURVE_NAMES.map((n) => path.join(run.dir, `${n}.png`)));

    const expectedText: Record<string, string[]> = {
      'loss-per-iteration': ['Training loss per iteration', 'Iteration (optimizer step)', 'Cross-entropy loss (nats)', 'loss of each step', 'mean of last'],
      'loss-per-epoch': ['Loss per epoch', 'Epoch', 'Cross-entropy loss (nats)', '>train<', '>validation<', 'backbone unfrozen'],
      'accuracy-per-epoch': ['Top-1 accuracy per epoch', 'Epoch', 'Top-1 accuracy (%)', '>train<', '>validation<'],
    };
    for (const name of CURVE_NAMES) {
      const svg = fs.readFileSync(path.join(run.dir, `${name}.svg`), 'utf8');
      assert.deepEqual(parseSvg(svg), { width: WIDTH, height: HEIGHT }, name);
      for (const text of expectedText[name]) assert.ok(svg.includes(text), `${name}.svg should contain ${text}`);

      const png = fs.readFileSync(path.join(run.dir, `${name}.png`));
      assert.ok(png.length > 5_000, `${name}.png is ${png.length} bytes`);
      assert.deepEqual(pngSize(png), { width: WIDTH, height: HEIGHT }, name);
      // Text really is in the PNG: its pixels differ from the chart drawn without any font by
      // those of the titles, tick labels and legend (a few thousand; 0 if text were missing).
      const withoutText = new Resvg(svg, { font: { loadSystemFonts: false }, background: 'white' }).render().pixels;
      const textPixels = differingPixels(decodePng(png), withoutText);
      assert.ok(textPixels > 1_500, `${name}: ${textPixels} pixels of text`);
    }
  });

  it('scales the PNG by pixelRatio', async function () {
    const fonts = findFonts();
    if (!rendersText(fonts)) this.skip();
    const files = await writeCurves(tmp, syntheticRun(2, 5), { width: 400, height: 200, pixelRatio: 2 });
    for (const file of files.png) assert.deepEqual(pngSize(fs.readFileSync(file)), { width: 800, height: 400 });
    const svg = fs.readFileSync(files.svg[0], 'utf8');
    assert.deepEqual(pngSize(svgToPng(svg, fonts, 1.5).png), { width: 600, height: 300 });
  });

  it('without a font that draws text: writes SVG only and warns, naming the Debian package', async () => {
    assert.equal(rendersText(NO_FONTS), false);
    const warnings: string[] = [];
    const files = await writeCurves(tmp, syntheticRun(2, 5), { fonts: NO_FONTS, warn: (m) => warnings.push(m) });
    assert.equal(files.svg.length, 3);
    assert.deepEqual(files.png, []);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /only SVG is written.*fonts-dejavu-core/);
    assert.deepEqual(files.warnings, warnings);
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.endsWith('.png')), []);
  });

  it('puts the records in the charts: 1-based epochs, accuracy in percent, NaN left out with a warning', () => {
    const records = syntheticRun(3, 4);
    const step = records.find((r) => r.type === 'step' && r.globalStep === 5);
    assert.ok(step?.type === 'step');
    step.loss = Number.NaN;
    const warnings: string[] = [];
    const specs = curveSpecs(records, resolveCurveOptions({ fonts: NO_FONTS, warn: (m) => warnings.push(m) }));
    const rows = (name: keyof typeof specs) => (specs[name] as unknown as { data: { values: Array<Record<string, unknown>> } }).data.values;

    assert.deepEqual(rows('loss-per-iteration').map((r) => r.iteration), [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]);
    assert.match(warnings[0], /^1 of 12 step losses are NaN or infinite/);
    const acc = rows('accuracy-per-epoch');
    assert.deepEqual(acc.map((r) => [r.epoch, r.split]), [[1, 'train'], [1, 'validation'], [2, 'train'], [2, 'validation'], [3, 'train'], [3, 'validation']]);
    assert.ok(Math.abs((acc[0].value as number) - 10) < 1e-9, `epoch 1 train top-1 is 10%, got ${acc[0].value}`);
    assert.deepEqual(rows('loss-per-epoch').map((r) => r.value), records.flatMap((r) => r.type === 'epoch' ? [r.train.loss, r.val.loss] : []));
  });

  it('draws a long run\'s loss per iteration as at most 2,000 points a series, the average taken over every step', () => {
    const records = syntheticRun(10, 1001);
    const losses = records.flatMap((r) => (r.type === 'step' ? [r.loss] : []));
    const specs = curveSpecs(records, resolveCurveOptions({ fonts: NO_FONTS, warn: () => {} }));
    const rows = (specs['loss-per-iteration'] as unknown as { data: { values: Array<{ iteration: number; loss: number; series: string }> } }).data.values;
    const series = [...new Set(rows.map((r) => r.series))];
    assert.deepEqual(series, ['loss of 1 step in 6', 'mean of last 200 steps']);
    for (const name of series) {
      const drawn = rows.filter((r) => r.series === name);
      assert.equal(drawn.length, Math.ceil(10010 / 6));
      assert.deepEqual(drawn.slice(0, 3).map((r) => r.iteration), [1, 7, 13]);
    }
    const raw = rows.filter((r) => r.series === series[0]);
    assert.deepEqual(raw.map((r) => r.loss), losses.filter((_, i) => i % 6 === 0));
    const averaged = movingAverage(losses, 200);
    assert.deepEqual(rows.filter((r) => r.series === series[1]).map((r) => r.loss), averaged.filter((_, i) => i % 6 === 0));
  });

  it('marks the unfreeze only when the backbone went from frozen to training', async () => {
    const never = syntheticRun(3, 2).map((r) => (r.type === 'epoch' ? { ...r, frozen: false } : r));
    const files = await writeCurves(tmp, never, { fonts: NO_FONTS, warn: () => {} });
    assert.ok(!fs.readFileSync(files.svg[1], 'utf8').includes('backbone unfrozen'));
  });

  it('moving average is a trailing mean', () => {
    assert.deepEqual(movingAverage([2, 4, 6, 8], 2), [2, 3, 5, 7]);
    assert.deepEqual(movingAverage([1, 2, 3], 5), [1, 1.5, 2]);
  });

  it('rejects sizes that cannot hold a chart, naming the field', () => {
    assert.throws(() => resolveCurveOptions({ width: 50 }), (err: unknown) => err instanceof ConfigError && err.field === 'curves.width');
    assert.throws(() => resolveCurveOptions({ pixelRatio: 0 }), (err: unknown) => err instanceof ConfigError && err.field === 'curves.pixelRatio');
  });
});
