// shardwise status page. Plain browser JavaScript, no library: it keeps the series the coordinator streams on
// /events (server-sent events, each message a snapshot from this page's cursor), and redraws the cards and
// the two SVG charts (chart.js). Text goes in through textContent only, so nothing a job or worker is named
// can run here.
import { drawChart, frozenBands, movingAverage } from './chart.js';

const COLORS = { train: '#2f6fde', trainSoft: '#b9cdf3', val: '#e0752d', epoch: '#1d4fa8' };
/** Seconds without a heartbeat after which the age is shown as a warning. */
const STALE_HEARTBEAT_S = 5;

const state = { snapshot: null, instance: null, steps: [], epochs: [], events: [] };

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---- formatting ----

function fmtDuration(seconds) {
  if (seconds === null || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}
const fmtPct = (x) => (x === null || !Number.isFinite(x) ? '—' : `${(100 * x).toFixed(1)}%`);
const fmtNum = (x, digits = 3) => (x === null || !Number.isFinite(x) ? '—' : x.toFixed(digits));
const fmtRate = (x) => (x === null || !Number.isFinite(x) ? '—' : x === 0 ? '0' : x.toExponential(2));
const fmtTime = (ms) => (ms === null ? 'earlier' : new Date(ms).toLocaleTimeString([], { hour12: false }));

// ---- merging the stream ----

/** Appends a slice `{from, items}` to a local series; a slice from earlier (a resumed run) replaces the tail. */
function merge(series, slice) {
  if (slice.from > series.length) return false; // a gap: reconnect from what we hold
  series.length = slice.from;
  for (const item of slice.items) series.push(item);
  return true;
}

function cursorQuery() {
  return `steps=${state.steps.length}&epochs=${state.epochs.length}&events=${state.events.length}`;
}

function onSnapshot(s) {
  // A different coordinator process (restarted, resumed) numbers its series afresh: start over from it.
  const sameSource = state.instance === null || state.instance === s.instance;
  state.instance = s.instance;
  const ok = sameSource && merge(state.steps, s.steps) && merge(state.epochs, s.epochs) && merge(state.events, s.events);
  state.snapshot = s;
  if (!ok) {
    state.steps.length = 0;
    state.epochs.length = 0;
    state.events.length = 0;
    reconnect(0);
    return;
  }
  render();
}

let source = null;
function connect() {
  source = new EventSource(`/events?${cursorQuery()}`);
  source.onopen = () => $('connection').classList.add('live');
  source.onmessage = (e) => onSnapshot(JSON.parse(e.data));
  source.onerror = () => {
    $('connection').classList.remove('live');
    // The coordinator went away or restarted: come back with the cursor we hold, so nothing is sent twice.
    reconnect(1000);
  };
}
function reconnect(delayMs) {
  if (source) source.close();
  source = null;
  setTimeout(connect, delayMs);
}

// ---- the cards ----

function setPill(node, text) {
  node.textContent = text;
  node.className = `pill ${text}`;
}

function renderHeader(s) {
  const j = s.job;
  $('job-name').textContent = j.name;
  document.title = `${j.name} · shardwise`;
  setPill($('job-state'), j.state);
  const facts = $('job-facts');
  facts.replaceChildren();
  const fact = (label, value) => {
    const span = el('span', {}, `${label} `);
    span.appendChild(el('b', {}, value));
    facts.appendChild(span);
  };
  fact('model', `${j.architecture}${j.pretrained ? ' (pretrained)' : ''} @ ${j.inputSize}px`);
  fact('optimizer', j.optimizer);
  fact('batch', `${j.batchSize} (micro ${j.microBatchSize})`);
  fact('exchange', j.exchange);
  fact('workers', `${j.minWorkers}–${j.maxWorkers}`);
}

function renderProgress(s) {
  const p = s.progress;
  const j = s.job;
  const finished = j.state === 'stopped' && p.globalSteps >= p.totalSteps;
  $('epoch').textContent = `${Math.min(p.epoch + 1, j.epochs)} / ${j.epochs}`;
  $('steps').textContent = `${p.globalSteps} / ${p.totalSteps}`;
  $('eta').textContent = finished ? 'done' : fmtDuration(p.etaSeconds);
  $('throughput').textContent = p.samplesPerSecond > 0 ? `${p.samplesPerSecond.toFixed(1)} img/s` : '—';
  $('worker-count').textContent = `${p.activeWorkers} active / ${p.desiredWorkers} desired`;
  $('train-loss').textContent = fmtNum(p.train.loss);
  $('val-top1').textContent = fmtPct(p.validation.top1);
  const epochFraction = Math.min(1, p.epochProgress);
  const jobFraction = p.totalSteps > 0 ? Math.min(1, p.globalSteps / p.totalSteps) : 0;
  $('epoch-bar').style.width = `${100 * epochFraction}%`;
  $('epoch-pct').textContent = `${Math.round(100 * epochFraction)}%`;
  $('job-bar').style.width = `${100 * jobFraction}%`;
  $('job-pct').textContent = `${Math.round(100 * jobFraction)}%`;
  $('waiting').hidden = !p.waitingForWorkers || j.state !== 'running';
}

/** The cleared body of table `id`; with no rows to come, one muted row saying why. */
function tableBody(id, rowCount, emptyText) {
  const body = $(id).querySelector('tbody');
  body.replaceChildren();
  if (rowCount === 0) {
    const row = el('tr', { class: 'none' });
    row.appendChild(el('td', { colspan: String($(id).querySelectorAll('th').length) }, emptyText));
    body.appendChild(row);
  }
  return body;
}

/** A table cell holding a state pill, and `note` under it when given. */
function pillCell(text, note) {
  const cell = el('td');
  const pill = el('span');
  setPill(pill, text);
  cell.appendChild(pill);
  if (note) cell.appendChild(el('span', { class: 'reason' }, note));
  return cell;
}

/** Appends a row of cells (`[className, text]` pairs, or ready cells) to `body`. */
function addRow(body, attrs, cells) {
  const row = el('tr', attrs);
  for (const c of cells) row.appendChild(Array.isArray(c) ? el('td', { class: c[0] }, c[1]) : c);
  body.appendChild(row);
}

function renderWorkers(s) {
  const body = tableBody('workers', s.workers.length, 'no worker has registered yet');
  for (const w of s.workers) {
    const id = el('td', { class: 'id' }, w.id);
    if (w.incarnation > 1) id.appendChild(el('span', { class: 'note' }, `incarnation ${w.incarnation}`));
    const live = w.state === 'joining' || w.state === 'active' || w.state === 'draining';
    const age = (s.nowMs - w.lastHeartbeatMs) / 1000;
    addRow(body, { 'data-worker': w.id, 'data-state': w.state }, [
      id,
      pillCell(w.state, w.failureReason),
      ['num', w.stepSeconds === null ? '—' : `${(1000 * w.stepSeconds).toFixed(0)} ms`],
      ['num', w.samples.toLocaleString()],
      [`num${live && age > STALE_HEARTBEAT_S ? ' stale' : ''}`, live ? `${age.toFixed(1)} s ago` : fmtTime(w.lastHeartbeatMs)],
    ]);
  }
}

function renderGroups(s) {
  const body = tableBody('groups', s.groups.length, 'no parameter group');
  for (const g of s.groups) {
    addRow(body, { 'data-group': g.group }, [['id', g.group], ['num', fmtRate(g.learningRate)], pillCell(g.frozen ? 'frozen' : 'training')]);
  }
}

function renderEpochs() {
  const body = tableBody('epochs', state.epochs.length, 'the first epoch is still running');
  for (const e of state.epochs.slice(-6).reverse()) {
    addRow(body, {}, [
      ['id', `${e.epoch + 1}${e.frozen ? ' ❄' : ''}`],
      ['num', fmtNum(e.trainLoss)],
      ['num', fmtNum(e.valLoss)],
      ['num', fmtPct(e.trainTop1)],
      ['num', fmtPct(e.valTop1)],
      ['num', fmtDuration(e.seconds)],
    ]);
  }
}

function renderTimeline() {
  const list = $('timeline');
  list.replaceChildren();
  for (const e of state.events.slice(-200).reverse()) {
    const item = el('li', { 'data-kind': e.kind });
    item.appendChild(el('time', {}, fmtTime(e.atMs)));
    item.appendChild(el('span', { class: `kind ${e.kind}` }, e.kind));
    item.appendChild(el('span', {}, e.text));
    list.appendChild(item);
  }
}

// ---- charts ----
function legend(id, items) {
  const box = $(id);
  box.replaceChildren();
  for (const it of items) {
    const span = el('span');
    const swatch = el('i', { class: it.dot ? 'dot' : '' });
    // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
    swatch.style.background = it.color;
    span.appendChild(swatch);
    span.appendChild(document.createTextNode(it.label));
    box.appendChild(span);
  }
}

function renderCharts(s) {
  const xMax = Math.max(1, s.progress.totalSteps);
  const stepLoss = state.steps.filter((p) => p.loss !== null).map((p) => [p.globalStep + 1, p.loss]);
  const window = Math.max(3, Math.round(s.job.stepsPerEpoch / 4));
  const epochX = (e) => e.globalSteps;
  const bands = frozenBands(state.events, s.job.stepsPerEpoch, s.progress.globalSteps);
  drawChart($('loss-chart'), {
    xMax,
    bands,
    yFormat: (v) => v.toFixed(2),
    emptyText: 'waiting for the first step…',
    series: [
      { name: 'step', color: COLORS.trainSoft, width: 1.25, points: stepLoss },
      { name: 'trend', color: COLORS.train, width: 2.5, points: movingAverage(stepLoss, window) },
      { name: 'val', color: COLORS.val, width: 2, dots: true, points: state.epochs.map((e) => [epochX(e), e.valLoss]) },
    ],
  });
  $('loss-chart').setAttribute('data-steps', String(stepLoss.length));
  legend('loss-legend', [
    { label: 'train loss per step', color: COLORS.trainSoft },
    { label: `moving mean (${window} steps)`, color: COLORS.train },
    { label: 'validation (epoch end)', color: COLORS.val, dot: true },
  ]);
  const running = state.steps.filter((p) => p.runningTop1 !== null).map((p) => [p.globalStep + 1, p.runningTop1]);
  drawChart($('acc-chart'), {
    xMax,
    bands,
    yFixed: [0, 1],
    yFormat: (v) => `${Math.round(100 * v)}%`,
    emptyText: 'waiting for the first step…',
    series: [
      { name: 'running', color: COLORS.train, width: 2, points: running },
      { name: 'train-epoch', color: COLORS.epoch, line: false, dots: true, points: state.epochs.map((e) => [epochX(e), e.trainTop1]) },
      { name: 'val', color: COLORS.val, width: 2, dots: true, points: state.epochs.map((e) => [epochX(e), e.valTop1]) },
    ],
  });
  legend('acc-legend', [
    { label: 'train, running epoch mean', color: COLORS.train },
    { label: 'train (epoch)', color: COLORS.epoch, dot: true },
    { label: 'validation (epoch end)', color: COLORS.val, dot: true },
  ]);
}

function render() {
  const s = state.snapshot;
  if (!s) return;
  renderHeader(s);
  renderProgress(s);
  renderWorkers(s);
  renderGroups(s);
  renderEpochs();
  renderTimeline();
  renderCharts(s);
}

window.addEventListener('resize', () => render());
connect();
