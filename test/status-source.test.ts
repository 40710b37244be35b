import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import { encodeMetricsLine, MetricsFormatError, type MetricsRecord } from '../common';
import { parseJobSpec } from '../common/job';
import { createCoordinatorMetrics, type MetricsServer, serveMetrics } from '../common/telemetry';
import { Membership } from '../coordinator';
import {
  createStatusPage,
  MAX_EVENT_STREAMS,
  MetricsTail,
  STATUS_ASSETS_DIR,
  StatusAssetsError,
  type StatusPage,
  type StatusSnapshot,
  statusRoutes,
  StatusSource,
  Timeline,
} from '../status';
import { pollUntil, withDeadline } from './support/deadline';

const step = (globalStep: number, loss = 2.3): MetricsRecord => ({
  type: 'step', epoch: Math.floor(globalStep / 4), step: globalStep % 4, globalStep, loss, lr: { backbone: 0.001, head: 0.01 }, samplesPerSec: 100,
});

/** The smallest valid job spec after its name. */
const SPEC_BODY = 'model: {architecture: small_cnn}\ntraining: {epochs: 2}\noptimizer: {learningRate: 0.01}\n';

/** GETs `url`; resolves with the status, headers and body. */
function get(url: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('error', reject);
  });
}

/** The status code of a GET of `url`, without reading the body (an event stream has no end). */
function statusOf(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, (res) => {
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    req.on('error', reject);
  });
}

/** Opens `/events` and hands each message's snapshot to `onMessage` until the returned close is called. */
function subscribe(url: string, onMessage: (s: StatusSnapshot) => void): () => void {
  let buffer = '';
  const req = http.get(url, (res) => {
    assert.equal(res.headers['content-type'], 'text/event-stream');
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
        const message = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (message.startsWith('data: ')) onMessage(JSON.parse(message.slice(6)) as StatusSnapshot);
      }
    });
  });
  req.on('error', () => undefined);
  return () => req.destroy();
}

describe('status page: metrics.jsonl tail', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'shardwise-status-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('returns only the complete lines written since the last read, and starts over when the file is rewritten', () => {
    const file = path.join(dir, 'metrics.jsonl');
    const tail = new MetricsTail(file);
    assert.deepEqual(tail.read(), [], 'a missing file is no record yet');
    writeFileSync(file, encodeMetricsLine(step(0)) + encodeMetricsLine(step(1)));
    assert.deepEqual(tail.read().map((r) => r.type === 'step' && r.globalStep), [0, 1]);
    const line = encodeMetricsLine(step(2, NaN));
    appendFileSync(file, line.slice(0, 20));
    assert.deepEqual(tail.read(), [], 'half a line waits');
    appendFileSync(file, line.slice(20));
    const [r] = tail.read();
    assert.ok(r.type === 'step' && r.globalStep === 2 && Number.isNaN(r.loss));
    writeFileSync(file, encodeMetricsLine(step(0, 1.5)));
    assert.deepEqual(tail.read().map((x) => x.type === 'step' && x.loss), [1.5], 'a shorter file (a resume) is read from its start');
  });

  it('names the file and line of a damaged record', () => {
    const file = path.join(dir, 'metrics.jsonl');
    writeFileSync(file, `${encodeMetricsLine(step(0))}{"type":"step","epoch":-1}\n`);
    assert.throws(() => new MetricsTail(file).read(), (err: unknown) => err instanceof MetricsFormatError && err.line === 2 && err.message.includes(file));
  });
});

describe('status page: timeline', () => {
  it('turns membership changes into joins, leaves and failures, a restart included', () => {
    const membership = new Membership({ minWorkers: 1, heartbeatTimeoutMs: 1000 });
    const timeline = new Timeline();
    const look = (ms: number) => timeline.onWorkers(membership.list(), ms);
    membership.register('a', 0);
    membership.register('b', 0);
    look(1);
    membership.admitPending(2);
    look(2);
    membership.leave('a', 1);
    membership.register('b', 3); // b restarted without saying goodbye: its first incarnation failed
    look(3);
    membership.fail('b', 'lease expired');
    look(4);
    look(5);
    assert.deepEqual(timeline.events.map((e) => [e.atMs, e.kind, e.text]), [
      [1, 'join', 'a joined'],
      [1, 'join', 'b joined'],
      [3, 'leave', 'a left'],
      [3, 'failure', 'b (incarnation 1) replaced by a restart'],
      [3, 'join', 'b joined (incarnation 2)'],
      [4, 'failure', 'b failed: lease expired'],
    ]);
  });

  it('adds records, new checkpoint folders and lifecycle moves once each', () => {
    const timeline = new Timeline();
    timeline.onRecords([{ type: 'freeze', epoch: 0 }, step(0), { type: 'unfreeze', epoch: 1 }, { type: 'lr-change', epoch: 1, step: 0, lr: { backbone: 0.001, head: 0.0005 } }], 10);
    timeline.onCheckpoints(['/r/checkpoints/step-8', '/r/checkpoints/step-4'], 11);
    timeline.onCheckpoints(['/r/checkpoints/step-12', '/r/checkpoints/step-8'], 12);
    timeline.onState('running', 13);
    timeline.onState('running', 14);
    assert.deepEqual(timeline.events.map((e) => [e.atMs, e.kind, e.text]), [
      [10, 'freeze', 'backbone frozen from epoch 1'],
      [10, 'unfreeze', 'backbone unfrozen from epoch 2'],
      [10, 'lr-change', 'learning rate backbone 1e-3, head 5e-4'],
      [11, 'checkpoint', 'checkpoint step-4'],
      [11, 'checkpoint', 'checkpoint step-8'],
      [12, 'checkpoint', 'checkpoint step-12'],
      [13, 'state', 'job running'],
    ]);
  });
});

describe('status page: source and routes over HTTP', () => {
  let dir: string;
  let file: string;
  let registry: Registry;
  let page: StatusPage;
  let server: MetricsServer;
  let membership: Membership;
  // Fields a spec may hold that are not the page's to show: paths on the coordinator's disk.
  const secretDir = '/srv/private-token-abc123';

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'shardwise-status-'));
    file = path.join(dir, 'metrics.jsonl');
    registry = new Registry();
    const metrics = createCoordinatorMetrics(registry);
    metrics.workerStepSeconds.set({ worker: 'w1' }, 0.25);
    metrics.workerSamples.inc({ worker: 'w1' }, 48);
    metrics.etaSeconds.set(90);
    metrics.top1Accuracy.set({ split: 'train' }, 0.4);
    membership = new Membership();
    membership.register('w1', Date.now());
    membership.admitPending(Date.now());
    const spec = parseJobSpec(`name: page-test\n${SPEC_BODY}data: {dir: ${secretDir}}\noutput: {runsDir: ${secretDir}}\n`);
    // The history of a resumed run: records already in the file when the page starts.
    writeFileSync(file, encodeMetricsLine({ type: 'freeze', epoch: 0 }) + encodeMetricsLine(step(0)));
    page = createStatusPage({
      spec, stepsPerEpoch: 4, registry, metricsFile: file, state: () => 'running', workers: () => membership.list(),
      checkpoints: async () => readdirSync(dir).filter((f) => f.startsWith('step-')).map((f) => path.join(dir, f)), refreshMs: 50,
    });
    server = await serveMetrics(registry, { routes: page.routes });
  });

  afterEach(async () => {
    page?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the page and its files from this server only, with a policy that forbids any other origin', async () => {
    const html = await get(`${server.url}/`);
    assert.equal(html.status, 200);
    assert.match(html.headers['content-type'] ?? '', /^text\/html/);
    assert.match(String(html.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
    for (const asset of ['/status/app.js', '/status/style.css', '/status/favicon.svg', '/status/chart.js']) {
      const res = await get(`${server.url}${asset}`);
      assert.equal(res.status, 200, asset);
    }
    for (const linked of ['"/status/app.js"', '"/status/style.css"', '"/status/favicon.svg"']) assert.ok(html.body.includes(linked), linked);
    assert.ok((await get(`${server.url}/status/app.js`)).body.includes("from './chart.js'"), 'app.js imports chart.js');
    // No URL to anywhere: the only absolute URLs in the files are XML namespace names.
    for (const f of readdirSync(STATUS_ASSETS_DIR)) {
      const urls = readFileSync(path.join(STATUS_ASSETS_DIR, f), 'utf8').match(/(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s"'`)]*/gi) ?? [];
      assert.deepEqual(urls.filter((u) => u !== 'http://www.w3.org/2000/svg'), [], f);
    }
    assert.equal((await get(`${server.url}/metrics`)).status, 200, '/metrics is still there');
    assert.equal((await get(`${server.url}/nope`)).status, 404);
  });

  it('/status.json: the public job fields, workers with their step time and samples, series from a cursor', async () => {
    await page.source.refresh();
    const res = await get(`${server.url}/status.json`);
    assert.equal(res.status, 200);
    assert.ok(!res.body.includes(secretDir), 'a path from the spec leaked into /status.json');
    const s = JSON.parse(res.body) as StatusSnapshot;
    assert.deepEqual(Object.keys(s.job).sort(), [
      'architecture', 'batchSize', 'epochs', 'exchange', 'inputSize', 'maxWorkers', 'microBatchSize', 'minWorkers', 'name',
      'optimizer', 'pretrained', 'state', 'stepsPerEpoch',
    ]);
    assert.equal(s.job.name, 'page-test');
    assert.deepEqual(s.workers.map((w) => [w.id, w.state, w.stepSeconds, w.samples]), [['w1', 'active', 0.25, 48]]);
    assert.deepEqual(s.groups.map((g) => [g.group, g.learningRate, g.frozen]), [['backbone', 0.001, true], ['head', 0.01, false]]);
    assert.equal(s.progress.etaSeconds, 90);
    assert.deepEqual(s.steps.items.map((p) => p.globalStep), [0]);
    assert.deepEqual(s.events.items.filter((e) => e.kind === 'freeze').map((e) => e.atMs), [null], 'history has no time');
    assert.ok(s.events.items.some((e) => e.kind === 'join' && e.text === 'w1 joined'));

    appendFileSync(file, encodeMetricsLine(step(1)) + encodeMetricsLine(step(2)));
    await page.source.refresh();
    const later = JSON.parse((await get(`${server.url}/status.json?steps=1&events=${s.events.items.length}`)).body) as StatusSnapshot;
    assert.equal(later.steps.from, 1);
    assert.deepEqual(later.steps.items.map((p) => [p.globalStep, p.runningTop1]), [[1, null], [2, 0.4]]);
    assert.deepEqual(later.events.items, []);
    assert.equal(later.progress.globalSteps, 3);

    const bad = await get(`${server.url}/status.json?steps=-1`);
    assert.equal(bad.status, 400);
    assert.match(bad.body, /steps: expected a non-negative integer .*, got "-1"/);
  });

  it('/events: a snapshot at once, then only what is new after each refresh', async () => {
    const messages: StatusSnapshot[] = [];
    let wake: () => void = () => undefined;
    const close = subscribe(`${server.url}/events`, (m) => {
      messages.push(m);
      wake();
    });
    const waitFor = (check: () => boolean) => withDeadline(new Promise<void>((resolve) => {
      wake = () => check() && resolve();
      wake();
    }), 10_000, `an /events message; got ${messages.length} so far`);
    try {
      await waitFor(() => messages.length >= 1);
      assert.deepEqual(messages[0].steps.items.map((p) => p.globalStep), [0]);
      appendFileSync(file, encodeMetricsLine(step(1)));
      mkdirSync(path.join(dir, 'step-1'));
      await waitFor(() => messages.some((m) => m.steps.items.length > 0 && m !== messages[0]));
      const grown = messages.find((m) => m !== messages[0] && m.steps.items.length > 0)!;
      assert.deepEqual([grown.steps.from, grown.steps.items.map((p) => p.globalStep)], [1, [1]]);
      await waitFor(() => messages.some((m) => m.events.items.some((e) => e.kind === 'checkpoint')));
      const sent = messages.flatMap((m) => m.steps.items.map((p) => p.globalStep));
      assert.deepEqual(sent, [0, 1], 'each step is sent once');
    } finally {
      close();
    }
  });

  it('answers 503 beyond MAX_EVENT_STREAMS open streams, and takes a new one once one closes', async () => {
    const closers: Array<() => void> = [];
    try {
      await withDeadline(Promise.all(Array.from({ length: MAX_EVENT_STREAMS }, () =>
        new Promise<void>((resolve) => closers.push(subscribe(`${server.url}/events`, () => resolve()))))), 10_000, 'every stream\'s first message');
      const refused = await get(`${server.url}/events`);
      assert.equal(refused.status, 503);
      assert.match(refused.body, new RegExp(`expected at most ${MAX_EVENT_STREAMS} open /events streams, ${MAX_EVENT_STREAMS} are open`));
      closers.pop()!();
      // The server learns of the close asynchronously: ask until a stream is let in again.
      await pollUntil(async () => ((await statusOf(`${server.url}/events`)) === 200 ? true : undefined), {
        timeoutMs: 10_000, intervalMs: 50, what: 'a stream to be accepted after one closed',
      });
    } finally {
      for (const close of closers) close();
    }
  });

  it('reports a damaged line, naming the file and line, and keeps reading the records after it', async () => {
    const warnings: string[] = [];
    const source = new StatusSource({
      spec: parseJobSpec(`name: x\n${SPEC_BODY}`), stepsPerEpoch: 4, registry, metricsFile: file, state: () => 'running',
      workers: () => [], checkpoints: async () => [], warn: (line) => warnings.push(line), refreshMs: 60_000,
    });
    try {
      appendFileSync(file, '{"type":"step","epoch":0}\n');
      await source.refresh();
      appendFileSync(file, encodeMetricsLine(step(1)));
      await source.refresh();
      assert.deepEqual(warnings.length, 1, warnings.join('\n'));
      assert.ok(warnings[0].startsWith(`status page: ${file}:3: "step" record`), warnings[0]);
      assert.deepEqual((await source.snapshot()).steps.items.map((p) => p.globalStep), [0, 1]);
    } finally {
      source.close();
    }
  });

  it('fails at start, naming the folder, when the browser files are missing', () => {
    const source = new StatusSource({
      spec: parseJobSpec(`name: x\n${SPEC_BODY}`), stepsPerEpoch: 1, registry, metricsFile: file,
      state: () => 'running', workers: () => [], checkpoints: async () => [],
    });
    try {
      assert.throws(() => statusRoutes(source, dir), (err: unknown) => err instanceof StatusAssetsError && err.message.includes(dir) && /index\.html/.test(err.message));
    } finally {
      source.close();
    }
  });
});
