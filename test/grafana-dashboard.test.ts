import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DASHBOARD_FILES, dashboardJson } from '../deploy/grafana/dashboard';
import { KILL_AT_STEP_ENV } from '../worker';
import { ClusterHarness, type WorkerProc } from './support/cluster';
import { recordsOf, waitForRecords } from './support/cluster-checks';
import { testJobYaml } from './support/cluster-data';
import { pollUntil, withDeadline } from './support/deadline';
import { Helm, ROOT } from './support/helm';
import { PrometheusServer, type TargetGroup } from './support/prometheus-server';

// The Grafana dashboard (deploy/grafana/shardwise.json): generated from deploy/grafana/*.ts and never stale,
// shipped unchanged in the chart, and every panel's PromQL answered with finite data by a real Prometheus
// scraping a real local job (coordinator and worker processes) that went through a join, a drain, a
// SIGKILL and a learning-rate change.

/** The namespace label the scrape config gives every target, as a ServiceMonitor would. */
const NAMESPACE = 'shardwise-test';
/** What Grafana puts in place of its variables when the dashboard shows the whole test run. */
const GRAFANA_VARIABLES: Record<string, string> = {
  $namespace: NAMESPACE,
  // 4 x the 1 s scrape interval is Grafana's minimum; a minute keeps every phase and worker in the window.
  $__rate_interval: '1m',
  $__range: '10m',
};

interface DashboardTarget {
  expr: string;
  legendFormat: string;
  datasource?: { type: string; uid: string };
}
interface DashboardPanel {
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: DashboardTarget[];
}
interface DashboardModel {
  templating: { list: Array<{ type: string; name: string; query?: unknown }> };
  panels: DashboardPanel[];
}

function committedDashboard(): DashboardModel {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'deploy', 'grafana', 'shardwise.json'), 'utf8')) as DashboardModel;
}

/** Panels with queries (rows have none). */
function queryPanels(d: DashboardModel): DashboardPanel[] {
  return d.panels.filter((p) => p.type !== 'row');
}

/** A panel query with Grafana's variables filled in; an unknown variable fails. */
function substitute(expr: string): string {
  const filled = expr.replace(/\$[_a-z]+/g, (name) => {
    const value = GRAFANA_VARIABLES[name];
    assert.ok(value !== undefined, `query uses the variable ${name}, which this test does not know: ${expr}`);
    return value;
  });
  return filled;
}

describe('grafana dashboard: generated, shipped in the chart, queries well formed', () => {
  it('deploy/grafana/shardwise.json and the chart copy are what deploy/grafana/dashboard.ts generates (make dashboard)', () => {
    const expected = dashboardJson();
    for (const file of DASHBOARD_FILES) {
      assert.equal(fs.readFileSync(file, 'utf8'), expected, `${path.relative(ROOT, file)} is stale: run make dashboard`);
    }
  });

  it('the chart ConfigMap carries the dashboard unchanged, labelled grafana_dashboard: "1"', () => {
    const helm = Helm.create();
    try {
      const objects = helm.template('ci', [], ['metrics.grafanaDashboard.enabled=true']) as Array<{
        kind: string; metadata: { name: string; labels: Record<string, string> }; data?: Record<string, string>;
      }>;
      const [cm] = objects.filter((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-dashboard'));
      assert.ok(cm, 'metrics.grafanaDashboard.enabled renders the dashboard ConfigMap');
      assert.equal(cm.metadata.labels.grafana_dashboard, '1');
      assert.deepEqual(JSON.parse(cm.data?.['shardwise.json'] ?? '{}'), committedDashboard());
    } finally {
      helm.dispose();
    }
  });

  it('has a ${datasource} variable every panel and query reads from, and every query is a shardwise_ metric without fallbacks', () => {
    const d = committedDashboard();
    const variable = d.templating.list.find((v) => v.name === 'datasource');
    assert.deepEqual([variable?.type, variable?.query], ['datasource', 'prometheus']);
    const namespace = d.templating.list.find((v) => v.name === 'namespace');
    assert.deepEqual([namespace?.type, namespace?.query], ['query', 'label_values(shardwise_desired_workers, namespace)'],
      'the live test below checks this very metric offers the namespace');
    const titles = queryPanels(d).map((p) => p.title);
    for (const wanted of ['Throughput', 'Step time p50 / p95', 'Share time per worker p50 / p95', 'Step time breakdown', 'Loss',
      'Accuracy top-1 / top-5', 'Learning rate per parameter group', 'Freeze state', 'Active vs desired workers',
      'Joins, leaves, failures, redone shares', 'Bytes per second', 'Epoch progress', 'ETA']) {
      assert.ok(titles.includes(wanted), `no panel '${wanted}' in ${titles.join(', ')}`);
    }
    for (const panel of queryPanels(d)) {
      assert.equal(panel.datasource?.uid, '${datasource}', panel.title);
      assert.ok(panel.targets && panel.targets.length > 0, `${panel.title} has no query`);
      for (const t of panel.targets) {
        assert.equal(t.datasource?.uid, '${datasource}', `${panel.title}: ${t.expr}`);
        assert.match(t.expr, /shardwise_[a-z_]+/, `${panel.title}: ${t.expr}`);
        assert.doesNotMatch(t.expr, /\bor\b|vector\(/, `${panel.title}: no fallbacks that hide missing data: ${t.expr}`);
      }
    }
  });
});

describe('grafana dashboard: every panel answers with data from a real Prometheus scraping a real job', function () {
  this.timeout(180_000);
  let harness: ClusterHarness;
  let prometheus: PrometheusServer;

  before(async function () {
    this.timeout(60_000);
    harness = await ClusterHarness.create();
    prometheus = await PrometheusServer.start({ fileSd: true, jobName: 'shardwise' });
  });

  after(async () => {
    await prometheus?.stop();
    await harness?.dispose();
  });

  it('after a join, a drain, a SIGKILL and a learning-rate change, every query returns finite values and event counts are above 0', async () => {
    // Scrape targets as pods: each process's metrics port with its namespace and pod name.
    const pods = new Map<string, string>();
    const publish = (): Promise<void> =>
      prometheus.setTargetGroups([...pods].map(([pod, url]): TargetGroup => ({ targets: [new URL(url).host], labels: { namespace: NAMESPACE, pod } })));
    const job = harness.writeJob('dashboard', testJobYaml('dashboard', { minWorkers: 1, leaseMs: 2000 }));
    // Many epochs: the job must still run when the panels are read; the harness stops it afterwards.
    // Three frozen epochs, and the coordinator scraped before any worker starts: Prometheus holds the rate from
    // before the unfreeze, so the change is visible to `changes()` however the machine's load shifts the steps.
    const coordinator = await harness.startCoordinator({ job, set: ['training.epochs=200', 'freeze.backboneEpochs=3'] });
    pods.set('coordinator', coordinator.ready.metrics);
    await publish();
    await pollUntil(async () => ((await prometheus.query(`up{namespace="${NAMESPACE}", pod="coordinator"} == 1`)).length > 0 ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 500, what: 'Prometheus to scrape the coordinator' });
    const addWorkers = async (workers: WorkerProc[]): Promise<void> => {
      for (const w of workers) pods.set(w.ready.id, w.ready.metrics);
      await publish();
    };
    // The failure: worker-2 SIGKILLs itself (the worker's failpoint) as it starts computing its first share
    // after step 0, so worker-1 redoes that share. A kill sent from here could land between two shares.
    const [first, victim] = await Promise.all([
      harness.startWorker(coordinator.ready.grpc, 'worker-1'),
      harness.startWorker(coordinator.ready.grpc, 'worker-2', { [KILL_AT_STEP_ENV]: '1' }),
    ]);
    await addWorkers([first, victim]);
    const runDir = coordinator.ready.runDir;
    try {
      // Join: a third worker is admitted and computes a share.
      const [joiner] = await harness.startWorkers(coordinator.ready.grpc, 1, 3);
      await addWorkers([joiner]);
      await waitForRecords(runDir, (rs) => recordsOf(rs, 'replica-hash').find((h) => 'worker-3' in h.workers), 'a step computed by worker-3');
      // Leave: SIGTERM drains it (as the chart's preStop hook does); it exits 0.
      joiner.child.signal('SIGTERM');
      assert.equal((await joiner.child.exited).code, 0, `worker-3 after its drain:\n${joiner.child.tail(30)}`);
      pods.delete('worker-3');
      await publish();
      // Failure: worker-2 died at its failpoint, holding a share that worker-1 redid.
      const exit = await withDeadline(victim.child.exited, 120_000, 'worker-2 to kill itself at its failpoint');
      assert.equal(exit.signal, 'SIGKILL', victim.child.tail(20));
      pods.delete('worker-2');
      await publish();
      // The learning-rate change: the unfreeze at epoch 3 lowers the rate (testJobYaml's freeze section).
      await waitForRecords(runDir, (rs) => recordsOf(rs, 'lr-change')[0], 'the learning-rate change at the unfreeze');
      // Prometheus has seen all of it, the validation figures included, and a minute of steps on worker-1.
      const seen = async (expr: string): Promise<true | undefined> =>
        (await prometheus.query(expr)).length > 0 ? true : undefined;
      for (const expr of [
        `shardwise_worker_failures_total{namespace="${NAMESPACE}"} > 0`,
        `shardwise_worker_leaves_total{namespace="${NAMESPACE}"} > 0`,
        `shardwise_redone_shares_total{namespace="${NAMESPACE}"} > 0`,
        `changes(shardwise_learning_rate{namespace="${NAMESPACE}", group="head"}[10m]) > 0`,
        `shardwise_loss{namespace="${NAMESPACE}", split="validation"}`,
        `increase(shardwise_worker_shares_total{namespace="${NAMESPACE}", pod="worker-1"}[1m]) > 0`,
      ]) {
        await pollUntil(() => seen(expr), { timeoutMs: 90_000, intervalMs: 1000, what: `Prometheus to answer ${expr}` });
      }
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${harness.outputs(30)}`);
    }

    // The namespace variable's own query (label_values of a coordinator metric) offers the job's namespace.
    const namespaces = await prometheus.query('count by (namespace) (shardwise_desired_workers)');
    assert.deepEqual(namespaces.map((n) => n.metric.namespace), [NAMESPACE]);

    const report: string[] = [];
    const empty: string[] = [];
    for (const panel of queryPanels(committedDashboard())) {
      for (const target of panel.targets ?? []) {
        const expr = substitute(target.expr);
        const samples = await prometheus.query(expr);
        if (samples.length === 0) empty.push(`${panel.title}: ${expr}`);
        for (const s of samples) {
          const value = Number(s.value);
          assert.ok(Number.isFinite(value), `${panel.title}: ${expr} returned ${s.value} for ${JSON.stringify(s.metric)}`);
          report.push(`${panel.title} | ${target.legendFormat} ${JSON.stringify(s.metric)} = ${s.value}`);
        }
        if (panel.title === 'Joins, leaves, failures, redone shares') {
          assert.ok(samples.length === 1 && Number(samples[0].value) > 0, `${target.legendFormat} must be above 0 after the run's events: ${expr} = ${samples[0]?.value}`);
        }
      }
    }
    // SHARDWISE_DASHBOARD_REPORT=FILE keeps every panel's values, for a person to read.
    const reportFile = process.env.SHARDWISE_DASHBOARD_REPORT;
    if (reportFile) fs.writeFileSync(reportFile, `${report.join('\n')}\n`);
    assert.deepEqual(empty, [], 'panel queries that returned no data');
  });
});
