// The status page's SVG line charts, drawn by hand: axes with round ticks, shaded step ranges, lines and dots.
// No chart library, so the page needs nothing but the coordinator.

const SVG_NS = 'http://www.w3.org/2000/svg';
/** Most vertices one curve is drawn with; longer series are thinned evenly (the last point always kept). */
const MAX_DRAWN_POINTS = 1500;

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceStep(range, count) {
  const raw = range / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit < 1.5 ? 1 : unit < 3 ? 2 : unit < 7 ? 5 : 10) * power;
}

function thin(points) {
  if (points.length <= MAX_DRAWN_POINTS) return points;
  const stride = points.length / MAX_DRAWN_POINTS;
  const out = [];
  for (let k = 0; k < MAX_DRAWN_POINTS; k++) out.push(points[Math.floor(k * stride)]);
  out.push(points[points.length - 1]);
  return out;
}

/** Mean of the last `window` values at each point: the trend under noisy per-step losses. */
export function movingAverage(points, window) {
  const out = [];
  let sum = 0;
  for (let k = 0; k < points.length; k++) {
    sum += points[k][1];
    if (k >= window) sum -= points[k - window][1];
    out.push([points[k][0], sum / Math.min(k + 1, window)]);
  }
  return out;
}

/** Step ranges where the backbone was frozen, from the timeline's freeze and unfreeze events. */
export function frozenBands(events, stepsPerEpoch, lastStep) {
  const bands = [];
  let start = null;
  for (const e of events) {
    if (e.kind === 'freeze' && start === null) start = e.epoch * stepsPerEpoch;
    if (e.kind === 'unfreeze' && start !== null) {
      bands.push([start, e.epoch * stepsPerEpoch]);
      start = null;
    }
  }
  if (start !== null && lastStep > start) bands.push([start, lastStep]);
  return bands;
}

/**
 * Draws `series` ({color, points: [[x, y]], width, dots, line, dash}) into `svg`, x from 0 to `xMax`
 * (the job's total steps, so the curve grows across the chart), with grid lines, axes and frozen bands.
 */
export function drawChart(svg, { series, xMax, yFormat, yFixed, bands, emptyText }) {
  const width = svg.clientWidth || 600;
  const height = svg.clientHeight || 260;
  const m = { left: 52, right: 14, top: 12, bottom: 30 };
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const drawn = series.reduce((n, s) => n + s.points.length, 0);
  svg.setAttribute('data-points', String(drawn));
  if (ys.length === 0) {
    svg.appendChild(svgEl('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'empty' }, emptyText));
    return;
  }
  let [y0, y1] = yFixed ?? [Math.min(...ys), Math.max(...ys)];
  if (!yFixed) {
    const pad = (y1 - y0) * 0.08 || Math.abs(y1) * 0.1 || 1;
    y0 = Math.max(0, y0 - pad);
    y1 += pad;
  }
  const xs = (x) => m.left + (x / Math.max(1, xMax)) * (width - m.left - m.right);
  const ysc = (y) => height - m.bottom - ((y - y0) / (y1 - y0)) * (height - m.top - m.bottom);

  for (const [a, b] of bands) {
    svg.appendChild(svgEl('rect', { class: 'band', x: xs(a), y: m.top, width: Math.max(0, xs(b) - xs(a)), height: height - m.top - m.bottom }));
    svg.appendChild(svgEl('text', { class: 'band-label', x: xs(a) + 4, y: m.top + 12 }, 'backbone frozen'));
  }
  const yStep = niceStep(y1 - y0, 5);
  for (let v = Math.ceil(y0 / yStep) * yStep; v <= y1 + 1e-12; v += yStep) {
    svg.appendChild(svgEl('line', { class: 'grid-line', x1: m.left, x2: width - m.right, y1: ysc(v), y2: ysc(v) }));
    svg.appendChild(svgEl('text', { x: m.left - 6, y: ysc(v) + 4, 'text-anchor': 'end' }, yFormat(v)));
  }
  const xStep = niceStep(xMax, 8);
  for (let v = 0; v <= xMax + 1e-9; v += xStep) {
    svg.appendChild(svgEl('text', { x: xs(v), y: height - m.bottom + 16, 'text-anchor': 'middle' }, String(Math.round(v))));
  }
  svg.appendChild(svgEl('text', { x: width - m.right, y: height - 4, 'text-anchor': 'end' }, 'global step'));
  svg.appendChild(svgEl('line', { class: 'axis', x1: m.left, x2: width - m.right, y1: height - m.bottom, y2: height - m.bottom }));
  svg.appendChild(svgEl('line', { class: 'axis', x1: m.left, x2: m.left, y1: m.top, y2: height - m.bottom }));

  for (const s of series) {
    const pts = thin(s.points.filter((p) => Number.isFinite(p[1])));
    if (pts.length === 0) continue;
    if (s.line !== false && pts.length > 1) {
      const d = pts.map((p, k) => `${k === 0 ? 'M' : 'L'}${xs(p[0]).toFixed(1)},${ysc(p[1]).toFixed(1)}`).join('');
      svg.appendChild(svgEl('path', {
        d, fill: 'none', stroke: s.color, 'stroke-width': s.width ?? 2, 'stroke-linejoin': 'round',
        'stroke-dasharray': s.dash ?? 'none', 'data-series': s.name,
      }));
    }
    if (s.dots) {
      for (const p of pts) {
        svg.appendChild(svgEl('circle', { cx: xs(p[0]), cy: ysc(p[1]), r: 3.5, fill: '#fff', stroke: s.color, 'stroke-width': 2, 'data-series': s.name }));
      }
    }
  }
}
