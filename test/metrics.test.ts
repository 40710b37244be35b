import assert from 'node:assert/strict';
import { Registry, register as globalRegistry } from 'prom-client';
import {
  createCoordinatorMetrics,
  createWorkerMetrics,
  serveMetrics,
  type CoordinatorMetrics,
  type MetricsServer,
} from '../common/telemetry';
import { ListenError } from '../common';
import { pollUntil } from './support/deadline';
import { PrometheusServer } from './support/prometheus-server';

/** Parses the text exposition format into `name{labels}` -> value (label order as written). */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    samples.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return samples;
}

/** Records one of everything, so the exposition and Prometheus have known values to show. */
function recordSampleValues(m: CoordinatorMetrics): void {
  m.steps.inc(7);
  m.samples.inc(224);
  m.samplesPerSecond.set(812.5);
  m.stepDuration.observe(0.3);
  m.stepPhaseDuration.observe({ phase: 'compute' }, 0.04);
  m.stepPhaseDuration.observe({ phase: 'transfer' }, 0.2);
  m.workerStepSeconds.set({ worker: 'worker-0' }, 0.12);
  m.workerStepSeconds.set({ worker: 'worker-1' }, 0.4);
  m.loss.set({ split: 'train' }, 1.25);
  m.top1Accuracy.set({ split: 'validation' }, 0.62);
  m.top5Accuracy.set({ split: 'validation' }, 0.95);
  m.learningRate.set({ group: 'backbone' }, 0.001);
  m.learningRate.set({ group: 'head' }, 0.01);
  m.frozen.set({ group: 'backbone' }, 1);
  m.frozen.set({ group: 'head' }, 0);
  m.activeWorkers.set(2);
  m.desiredWorkers.set(3);
  m.waitingForWorkers.set(0);
  m.workerJoins.inc(3);
  m.workerFailures.inc();
  m.redoneShares.inc(2);
  m.sentBytes.inc(1_048_576);
  m.epochProgress.set(0.25);
  m.etaSeconds.set(90);
}

// Never called: it only has to type-check. A misspelt label name must be a compile error (tsc in lint).
export function labelNamesAreChecked(m: CoordinatorMetrics): void {
  // @ts-expect-error 'grup' is not a label of shardwise_learning_rate
  m.learningRate.set({ grup: 'head' }, 1);
  // @ts-expect-error 'phase' is not a label of shardwise_worker_step_seconds
  m.workerStepSeconds.set({ phase: 'compute' }, 1);
}

describe('telemetry metrics', () => {
  it('coordinator and worker metrics share one registry without clashing, and never touch the global one', async () => {
    const registry = new Registry();
    createCoordinatorMetrics(registry);
    createWorkerMetrics(registry);
    const metrics = await registry.getMetricsAsJSON();
    assert.ok(metrics.length >= 35, `expected at least 35 metrics, got ${metrics.length}`);
    const shardwiseInGlobal = (await globalRegistry.getMetricsAsJSON()).filter((m) => m.name.startsWith('shardwise_'));
    assert.deepEqual(shardwiseInGlobal, []);
  });

  it('follows Prometheus naming conventions', async () => {
    const registry = new Registry();
    createCoordinatorMetrics(registry);
    createWorkerMetrics(registry);
    for (const m of await registry.getMetricsAsJSON()) {
      // prom-client's typings declare `type` as a numeric enum, but it is the exposition string at run time.
      const type = String(m.type);
      assert.match(m.name, /^shardwise_[a-z0-9_]+$/, m.name);
      if (type === 'counter') assert.match(m.name, /_total$/, `counter ${m.name} must end in _total`);
      else assert.doesNotMatch(m.name, /_total$/, `only counters end in _total: ${m.name}`);
      if (type === 'histogram') assert.match(m.name, /_seconds$/, `histogram ${m.name} must be in seconds`);
      assert.doesNotMatch(m.name, /_(ms|milliseconds|kb|mb|percent)(_|$)/, `${m.name} must use base units`);
      assert.ok(m.help.length > 10, `${m.name} needs a help text`);
    }
  });
});

describe('serveMetrics', () => {
  let registry: Registry;
  let coordinator: CoordinatorMetrics;
  let server: MetricsServer;
  let healthy = true;

  beforeEach(async () => {
    registry = new Registry();
    coordinator = createCoordinatorMetrics(registry);
    healthy = true;
    server = await serveMetrics(registry, { host: '127.0.0.1', port: 0, isHealthy: () => healthy });
  });
  afterEach(async () => {
    await server?.close();
  });

  it('serves the recorded samples with their labels in the registry content type', async () => {
    assert.ok(server.port > 0);
    recordSampleValues(coordinator);
    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), registry.contentType);
    const text = await res.text();
    assert.match(text, /^# HELP shardwise_steps_total /m);
    assert.match(text, /^# TYPE shardwise_step_phase_duration_seconds histogram$/m);
    const samples = parseExposition(text);
    const expected: Record<string, number> = {
      shardwise_steps_total: 7,
      shardwise_samples_total: 224,
      shardwise_samples_per_second: 812.5,
      'shardwise_step_duration_seconds_bucket{le="0.25"}': 0,
      'shardwise_step_duration_seconds_bucket{le="0.5"}': 1,
      'shardwise_step_duration_seconds_count': 1,
      'shardwise_step_phase_duration_seconds_bucket{le="0.05",phase="compute"}': 1,
      'shardwise_step_phase_duration_seconds_bucket{le="0.1",phase="transfer"}': 0,
      'shardwise_step_phase_duration_seconds_sum{phase="transfer"}': 0.2,
      // Phases never observed are still exported (zeroed), so dashboards see every phase at once.
      'shardwise_step_phase_duration_seconds_count{phase="reduce"}': 0,
      'shardwise_step_phase_duration_seconds_count{phase="wait"}': 0,
      'shardwise_worker_step_seconds{worker="worker-0"}': 0.12,
      'shardwise_worker_step_seconds{worker="worker-1"}': 0.4,
      'shardwise_loss{split="train"}': 1.25,
      'shardwise_top1_accuracy_ratio{split="validation"}': 0.62,
      'shardwise_top5_accuracy_ratio{split="validation"}': 0.95,
      'shardwise_learning_rate{group="backbone"}': 0.001,
      'shardwise_learning_rate{group="head"}': 0.01,
      'shardwise_param_group_frozen{group="backbone"}': 1,
      'shardwise_param_group_frozen{group="head"}': 0,
      shardwise_active_workers: 2,
      shardwise_desired_workers: 3,
      shardwise_waiting_for_workers: 0,
      shardwise_worker_joins_total: 3,
      shardwise_worker_leaves_total: 0,
      shardwise_worker_failures_total: 1,
      shardwise_redone_shares_total: 2,
      shardwise_sent_bytes_total: 1_048_576,
      shardwise_received_bytes_total: 0,
      shardwise_epoch_progress_ratio: 0.25,
      shardwise_eta_seconds: 90,
    };
    for (const [series, value] of Object.entries(expected)) {
      assert.equal(samples.get(series), value, `${series} in:\n${text}`);
    }
  });

  it('answers /healthz from isHealthy, 404 for unknown paths, 405 for other methods', async () => {
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    healthy = false;
    assert.equal((await fetch(`${server.url}/healthz`)).status, 503);
    assert.equal((await fetch(`${server.url}/nope`)).status, 404);
    assert.equal((await fetch(`${server.url}/metrics`, { method: 'POST' })).status, 405);
  });

  it('rejects with a ListenError naming the address and its flag when the port is taken', async () => {
    await assert.rejects(serveMetrics(registry, { host: '127.0.0.1', port: server.port }), (err: unknown) => {
      assert.ok(err instanceof ListenError, `expected a ListenError, got ${err}`);
      assert.equal(err.message, `metrics server: cannot listen on 127.0.0.1:${server.port}: the port is already in use ` +
        'by another process; choose another --metrics-port (0 picks a free port)');
      return true;
    });
  });
});

describe('a real Prometheus scraping serveMetrics', function () {
  this.timeout(60_000);
  const JOB = 'shardwise-test';
  let server: MetricsServer | undefined;
  let prometheus: PrometheusServer | undefined;

  after(async () => {
    await prometheus?.stop();
    await server?.close();
  });

  it('ingests the exposed samples, labels included, and follows later changes', async () => {
    const registry = new Registry();
    const coordinator = createCoordinatorMetrics(registry);
    recordSampleValues(coordinator);
    server = await serveMetrics(registry, { host: '127.0.0.1', port: 0 });
    prometheus = await PrometheusServer.start({ targets: [`127.0.0.1:${server.port}`], jobName: JOB });
    const p = prometheus;

    /** Waits until `promql` returns exactly one sample with value `want`, and returns it. */
    const waitForValue = (promql: string, want: string) =>
      pollUntil(
        async () => {
          const result = await p.query(promql);
          return result.length === 1 && result[0].value === want ? result[0] : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 200, what: `${promql} == ${want}; Prometheus log:\n${p.log}` },
      );

    // The first sample takes ~6 s: Prometheus 2.42 hands new targets to the scraper every 5 s (fixed).
    const steps = await waitForValue(`shardwise_steps_total{job="${JOB}"}`, '7');
    assert.equal(steps.metric.instance, `127.0.0.1:${server.port}`);
    const lr = await waitForValue(`shardwise_learning_rate{job="${JOB}",group="head"}`, '0.01');
    assert.equal(lr.metric.group, 'head');
    await waitForValue(`max by (worker) (shardwise_worker_step_seconds{job="${JOB}",worker="worker-1"})`, '0.4');
    await waitForValue(`shardwise_step_phase_duration_seconds_bucket{job="${JOB}",phase="compute",le="0.05"}`, '1');

    // A later change reaches Prometheus on a later scrape: it is live scraping, not a one-off.
    coordinator.steps.inc(3);
    await waitForValue(`shardwise_steps_total{job="${JOB}"}`, '10');
  });
});
