import assert from 'node:assert/strict';
import { CIFAR10_MD5, CIFAR10_URL } from '../common/data';
import { Helm, scenarioFile } from './support/helm';

// The chart's NetworkPolicies evaluated as Kubernetes evaluates them (a connection needs an egress rule on
// the source pod and an ingress rule on the target pod, both matching peer and port), plus the worker's
// drain on removal, autoscale ownership of replicas, GPU spreading and the CIFAR-10 download Job.

type Labels = Record<string, string>;
interface Peer {
  podSelector?: { matchLabels?: Labels };
  namespaceSelector?: { matchLabels?: Labels };
  ipBlock?: { cidr: string };
}
interface Rule {
  from?: Peer[];
  to?: Peer[];
  ports?: Array<{ port: number; protocol: string }>;
}
interface Policy {
  kind: 'NetworkPolicy';
  metadata: { name: string };
  spec: { podSelector: { matchLabels: Labels }; ingress?: Rule[]; egress?: Rule[] };
}
interface Obj {
  kind: string;
  metadata: { name: string; labels?: Labels };
  spec?: Record<string, unknown> & { template?: { metadata: { labels: Labels }; spec: PodSpec } };
}
interface Container {
  name: string;
  args?: string[];
  env?: Array<{ name: string; value?: string }>;
  volumeMounts?: Array<{ name: string; mountPath: string; subPath?: string }>;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Array<{ name: string; persistentVolumeClaim?: { claimName: string } }>;
  topologySpreadConstraints?: Array<{ labelSelector?: { matchLabels: Labels }; topologyKey: string }>;
}

const matches = (selector: Labels | undefined, labels: Labels): boolean => Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);

/** A pod of the release, or another namespace's pod (Prometheus), as policies see it. */
interface Endpoint {
  labels: Labels;
  namespace: string;
}

/** Whether `rule`'s peers include `peer` (pods of the release's namespace unless a namespaceSelector says otherwise). */
function peerMatches(peers: Peer[] | undefined, peer: Endpoint, releaseNamespace: string): boolean {
  return (peers ?? []).some((p) => {
    if (p.ipBlock) return false;
    const nsOk = p.namespaceSelector
      ? matches(p.namespaceSelector.matchLabels, { 'kubernetes.io/metadata.name': peer.namespace })
      : peer.namespace === releaseNamespace;
    return nsOk && (p.podSelector === undefined || matches(p.podSelector.matchLabels, peer.labels));
  });
}

/** Kubernetes' answer: may `from` open a TCP connection to `to` on `port`? Unselected pods allow everything. */
function allowed(policies: Policy[], from: Endpoint, to: Endpoint, port: number, ns = 'default'): boolean {
  const side = (pod: Endpoint, direction: 'ingress' | 'egress', other: Endpoint): boolean => {
    const selecting = pod.namespace === ns ? policies.filter((p) => matches(p.spec.podSelector.matchLabels, pod.labels)) : [];
    if (selecting.length === 0) return true;
    return selecting.some((p) => (p.spec[direction] ?? []).some((r) =>
      peerMatches(direction === 'ingress' ? r.from : r.to, other, ns) && (r.ports ?? []).some((q) => q.port === port && q.protocol === 'TCP')));
  };
  return side(from, 'egress', to) && side(to, 'ingress', from);
}

describe('helm chart: network policies, drains, autoscale, GPU spread, dataset download', () => {
  let helm: Helm;
  before(() => {
    helm = Helm.create();
  });
  after(() => helm?.dispose());

  const render = (files: string[], sets: string[] = []): Obj[] => helm.template('ci', files, sets) as Obj[];
  const workload = (objects: Obj[], component: string): Obj => {
    const found = objects.find((o) => ['Deployment', 'StatefulSet'].includes(o.kind) && o.metadata.labels?.['app.kubernetes.io/component'] === component);
    assert.ok(found, `no workload for ${component}`);
    return found;
  };
  const pod = (objects: Obj[], component: string): Endpoint => ({ labels: workload(objects, component).spec?.template?.metadata.labels ?? {}, namespace: 'default' });

  it('lets through exactly shardwise\'s connections: gRPC, both data planes, NATS, metrics from the monitoring namespace', () => {
    const objects = render([]);
    const policies = objects.filter((o): o is Obj & Policy => o.kind === 'NetworkPolicy');
    assert.equal(policies.length, 3, 'coordinator, worker and NATS policies');
    const [coordinator, worker, nats] = ['coordinator', 'worker', 'nats'].map((c) => pod(objects, c));
    const prometheus: Endpoint = { labels: { 'app.kubernetes.io/name': 'prometheus' }, namespace: 'monitoring' };
    const stranger: Endpoint = { labels: { app: 'other' }, namespace: 'default' };
    const allowedPairs: Array<[string, Endpoint, Endpoint, number]> = [
      ['worker -> coordinator gRPC', worker, coordinator, 50051],
      ['worker -> coordinator data plane', worker, coordinator, 50061],
      ['worker -> worker data plane', worker, worker, 50061],
      ['coordinator -> worker data plane', coordinator, worker, 50061],
      ['coordinator -> NATS', coordinator, nats, 4222],
      ['worker -> NATS', worker, nats, 4222],
      ['Prometheus -> coordinator metrics', prometheus, coordinator, 9464],
      ['Prometheus -> worker metrics', prometheus, worker, 9464],
    ];
    for (const [what, from, to, port] of allowedPairs) assert.ok(allowed(policies, from, to, port), `${what} must be allowed`);
    const deniedPairs: Array<[string, Endpoint, Endpoint, number]> = [
      ['another pod -> coordinator gRPC', stranger, coordinator, 50051],
      ['another pod -> worker data plane', stranger, worker, 50061],
      ['another pod -> NATS', stranger, nats, 4222],
      ['NATS -> coordinator gRPC', nats, coordinator, 50051],
      ['Prometheus in another namespace -> coordinator metrics', { ...prometheus, namespace: 'elsewhere' }, coordinator, 9464],
    ];
    for (const [what, from, to, port] of deniedPairs) assert.ok(!allowed(policies, from, to, port), `${what} must be denied`);
    // DNS from every role; no API server egress without autoscale.
    for (const p of policies.filter((q) => !q.metadata.name.endsWith('-nats'))) {
      const dns = (p.spec.egress ?? []).find((r) => r.ports?.some((q) => q.port === 53 && q.protocol === 'UDP'));
      assert.ok(dns, `${p.metadata.name} allows DNS`);
      assert.ok(!(p.spec.egress ?? []).some((r) => r.ports?.some((q) => q.port === 6443)), `${p.metadata.name}: no API server egress`);
    }
  });

  it('monitoring-autoscale: coordinator egress to the API server, the monitoring pods only, and the download Job\'s egress', () => {
    const objects = render([scenarioFile('monitoring-autoscale')]);
    const policies = objects.filter((o): o is Obj & Policy => o.kind === 'NetworkPolicy');
    const byName = (suffix: string): Policy => {
      const p = policies.find((q) => q.metadata.name.endsWith(suffix));
      assert.ok(p, `no NetworkPolicy *${suffix}`);
      return p;
    };
    const api = (byName('-coordinator').spec.egress ?? []).find((r) => r.ports?.some((q) => q.port === 6443));
    assert.deepEqual(api?.to?.map((p) => p.ipBlock?.cidr), ['10.96.0.1/32', '172.18.0.2/32']);
    const coordinator = pod(objects, 'coordinator');
    assert.ok(allowed(policies, { labels: { 'app.kubernetes.io/name': 'prometheus' }, namespace: 'monitoring' }, coordinator, 9464));
    assert.ok(!allowed(policies, { labels: { 'app.kubernetes.io/name': 'grafana' }, namespace: 'monitoring' }, coordinator, 9464),
      'only the labelled scraper pods of the monitoring namespace');
    const download = byName('-dataset-download');
    assert.deepEqual(download.spec.ingress, []);
    assert.ok((download.spec.egress ?? []).some((r) => r.ports?.some((q) => q.port === 443)), 'the Job downloads over HTTPS');
    assert.equal(render([], ['networkPolicy.enabled=false']).filter((o) => o.kind === 'NetworkPolicy').length, 0);
  });

  it('a removed worker drains in its preStop hook; with autoscale the StatefulSet leaves replicas to the coordinator', () => {
    const sts = workload(render([]), 'worker');
    const worker = sts.spec?.template?.spec.containers[0];
    const command = worker?.lifecycle?.preStop?.exec?.command.join(' ') ?? '';
    assert.match(command, /kill -TERM 1; while kill -0 1/, 'SIGTERM to the worker, then wait until it left');
    assert.equal(sts.spec?.replicas, 2);
    assert.equal(workload(render([], ['workers.preStopDrain=false']), 'worker').spec?.template?.spec.containers[0].lifecycle, undefined);
    const scaled = workload(render([scenarioFile('monitoring-autoscale')]), 'worker');
    assert.ok(!('replicas' in (scaled.spec ?? {})), 'autoscale.enabled: no spec.replicas for helm upgrade to reset');
  });

  it('gpu-workers: spreads workers over nodes with a label selector that picks exactly the workers', () => {
    const objects = render([scenarioFile('gpu-workers')]);
    const spec = workload(objects, 'worker').spec?.template?.spec;
    const [spread] = spec?.topologySpreadConstraints ?? [];
    assert.equal(spread?.topologyKey, 'kubernetes.io/hostname');
    assert.ok(matches(spread.labelSelector?.matchLabels, pod(objects, 'worker').labels));
    assert.ok(!matches(spread.labelSelector?.matchLabels, pod(objects, 'coordinator').labels));
  });

  it('downloads CIFAR-10 (MD5-checked) into its claim, which the coordinator mounts as CIFAR10_DIR once the Job is done', () => {
    const objects = render([scenarioFile('monitoring-autoscale')]);
    const job = objects.find((o) => o.kind === 'Job');
    assert.ok(job);
    const download = job.spec?.template?.spec.containers[0];
    const env = Object.fromEntries((download?.env ?? []).map((e) => [e.name, e.value]));
    assert.deepEqual([env.DATASET_URL, env.DATASET_MD5], [CIFAR10_URL, CIFAR10_MD5], 'the same archive and checksum shardwise itself trusts');
    const jobClaim = job.spec?.template?.spec.volumes?.[0].persistentVolumeClaim?.claimName;
    assert.ok(objects.some((o) => o.kind === 'PersistentVolumeClaim' && o.metadata.name === jobClaim), `the Job's claim ${jobClaim} is rendered`);
    const coordinator = workload(objects, 'coordinator').spec?.template?.spec;
    const volume = coordinator?.volumes?.find((v) => v.persistentVolumeClaim?.claimName === jobClaim);
    assert.ok(volume, 'the coordinator mounts the dataset claim');
    const main = coordinator?.containers[0];
    const dataDir = main?.env?.find((e) => e.name === 'CIFAR10_DIR')?.value;
    const mount = main?.volumeMounts?.find((m) => m.name === volume.name);
    assert.deepEqual([mount?.mountPath, mount?.subPath], [dataDir, 'cifar-10-batches-bin']);
    const script = download?.args?.join('\n') ?? '';
    const marker = /touch \/data\/(\S+)/.exec(script)?.[1];
    assert.ok(marker && script.indexOf('md5sum -c') < script.indexOf('tar -xzf') && script.indexOf('tar -xzf') < script.indexOf('touch'),
      'checksum, then extract, then the completion marker');
    const wait = coordinator?.initContainers?.[0];
    assert.ok(wait?.args?.join(' ').includes(marker), 'the coordinator waits for the marker the Job writes last');
  });
});
