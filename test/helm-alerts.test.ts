import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { CHART, Helm, ROOT } from './support/helm';

// The chart's alerting rules (helm/shardwise/files/prometheus-rules.yaml), checked by Prometheus' own
// promtool: every expression parses (`check rules`), and every alert fires on a series built to trigger it
// and stays quiet on a healthy job beside it (`test rules`, test/fixtures/prometheus-rules.test.yaml). The
// PrometheusRule the chart renders carries exactly these groups and the configurable release label.

const RULES = path.join(CHART, 'files', 'prometheus-rules.yaml');
const RULE_TESTS = path.join(ROOT, 'test', 'fixtures', 'prometheus-rules.test.yaml');
const INSTALL_HINT = 'scripts/ensure-deb.sh prometheus:prometheus (as root), or apt-get install prometheus';
const ALERTS = ['ShardwiseJobStalled', 'ShardwiseWorkerLost', 'ShardwiseBelowMinWorkers', 'ShardwiseExactlyOnceBroken', 'ShardwiseReplicaHashMismatch'];

interface RuleFile {
  groups: Array<{ name: string; rules: Array<{ alert: string; expr: string }> }>;
}

/** Runs promtool; a missing binary fails the test with the install line (never a skip). */
function promtool(args: string[]): { status: number; output: string } {
  const run = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if (run.error) throw new Error(`promtool could not run (${run.error.message}); install it: ${INSTALL_HINT}`);
  return { status: run.status ?? -1, output: `${run.stdout}${run.stderr}` };
}

describe('helm chart: alerting rules, checked by promtool', () => {
  const rules = parseYaml(fs.readFileSync(RULES, 'utf8')) as RuleFile;

  it('promtool check rules: every expression parses', () => {
    const run = promtool(['check', 'rules', RULES]);
    assert.equal(run.status, 0, run.output);
    assert.match(run.output, new RegExp(`SUCCESS: ${ALERTS.length} rules found`));
  });

  it('promtool test rules: each alert fires on its broken series and stays quiet on a healthy job', () => {
    const run = promtool(['test', 'rules', RULE_TESTS]);
    assert.equal(run.status, 0, run.output);
    // Every alert has a case that expects it to fire.
    const tests = parseYaml(fs.readFileSync(RULE_TESTS, 'utf8')) as {
      tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
    };
    const fired = new Set(tests.tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
    assert.deepEqual([...fired].sort(), [...ALERTS].sort());
    assert.deepEqual(rules.groups.flatMap((g) => g.rules.map((r) => r.alert)).sort(), [...ALERTS].sort());
  });

  it('promtool test rules fails when a rule no longer fires (the test can fail)', () => {
    // The same tests against rules whose worker-lost threshold can never be met.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-rules-'));
    try {
      const broken = structuredClone(rules);
      const lost = broken.groups[0].rules.find((r) => r.alert === 'ShardwiseWorkerLost');
      assert.ok(lost);
      lost.expr = 'increase(shardwise_worker_failures_total[5m]) > 1000';
      const rulesCopy = path.join(dir, 'rules.yaml');
      fs.writeFileSync(rulesCopy, stringifyYaml(broken));
      const tests = parseYaml(fs.readFileSync(RULE_TESTS, 'utf8')) as { rule_files: string[] };
      tests.rule_files = [rulesCopy];
      const testsCopy = path.join(dir, 'tests.yaml');
      fs.writeFileSync(testsCopy, stringifyYaml(tests));
      const run = promtool(['test', 'rules', testsCopy]);
      assert.notEqual(run.status, 0, run.output);
      assert.match(run.output, /alertname: ShardwiseWorkerLost/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the PrometheusRule carries these groups unchanged and the release label the ServiceMonitor carries', () => {
    const helm = Helm.create();
    try {
      const sets = ['metrics.prometheusRule.enabled=true', 'metrics.serviceMonitor.enabled=true', 'metrics.release=kube-prometheus-stack'];
      const objects = helm.template('ci', [], sets) as Array<{ kind: string; metadata: { labels: Record<string, string> }; spec: unknown }>;
      const rule = objects.find((o) => o.kind === 'PrometheusRule');
      const monitor = objects.find((o) => o.kind === 'ServiceMonitor');
      assert.ok(rule && monitor);
      assert.deepEqual(rule.spec, rules);
      assert.equal(rule.metadata.labels.release, 'kube-prometheus-stack');
      assert.equal(monitor.metadata.labels.release, 'kube-prometheus-stack');
      const off = helm.template('ci', [], []) as Array<{ kind: string }>;
      assert.equal(off.filter((o) => o.kind === 'PrometheusRule').length, 0, 'off by default: the CRD may be missing');
    } finally {
      helm.dispose();
    }
  });
});
