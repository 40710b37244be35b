import assert from 'node:assert/strict';
import { ciScenarios, Helm, scenarioFile } from './support/helm';

// Every object the chart renders, in every ci/ scenario and in the variants below, validated against the
// Kubernetes OpenAPI schemas (kubernetes-models) and the prometheus-operator CRD schemas
// (@kubernetes-models/prometheus-operator): a wrong field type, a missing required field or a typo in a
// field name fails here instead of at `kubectl apply` on a real cluster.

/** What a kubernetes-models class instance offers; its base package's types do not resolve under node10. */
interface Validatable {
  validate(): void;
}
type ModelClass = new (data: object) => Validatable;

// Both packages are ESM-only (exports with only an `import` condition), so they are loaded with import().
const model = (load: () => Promise<unknown>, kind: string) => async (): Promise<ModelClass> => ((await load()) as Record<string, ModelClass>)[kind];
const MODELS: Record<string, () => Promise<ModelClass>> = {
  'v1/ConfigMap': model(() => import('kubernetes-models/v1/ConfigMap'), 'ConfigMap'),
  'v1/Service': model(() => import('kubernetes-models/v1/Service'), 'Service'),
  'v1/Pod': model(() => import('kubernetes-models/v1/Pod'), 'Pod'),
  'v1/PersistentVolumeClaim': model(() => import('kubernetes-models/v1/PersistentVolumeClaim'), 'PersistentVolumeClaim'),
  'v1/ServiceAccount': model(() => import('kubernetes-models/v1/ServiceAccount'), 'ServiceAccount'),
  'apps/v1/Deployment': model(() => import('kubernetes-models/apps/v1/Deployment'), 'Deployment'),
  'apps/v1/StatefulSet': model(() => import('kubernetes-models/apps/v1/StatefulSet'), 'StatefulSet'),
  'batch/v1/Job': model(() => import('kubernetes-models/batch/v1/Job'), 'Job'),
  'policy/v1/PodDisruptionBudget': model(() => import('kubernetes-models/policy/v1/PodDisruptionBudget'), 'PodDisruptionBudget'),
  'networking.k8s.io/v1/NetworkPolicy': model(() => import('kubernetes-models/networking.k8s.io/v1/NetworkPolicy'), 'NetworkPolicy'),
  'rbac.authorization.k8s.io/v1/Role': model(() => import('kubernetes-models/rbac.authorization.k8s.io/v1/Role'), 'Role'),
  'rbac.authorization.k8s.io/v1/RoleBinding': model(() => import('kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding'), 'RoleBinding'),
  'monitoring.coreos.com/v1/ServiceMonitor': model(() => import('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor'), 'ServiceMonitor'),
  'monitoring.coreos.com/v1/PodMonitor': model(() => import('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor'), 'PodMonitor'),
  'monitoring.coreos.com/v1/PrometheusRule': model(() => import('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule'), 'PrometheusRule'),
};

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
}

/** Validates one rendered object; the error names the object and what the schema rejected. */
async function validate(object: Manifest, where: string): Promise<void> {
  const key = `${object.apiVersion}/${object.kind}`;
  const load = MODELS[key];
  assert.ok(load, `${where}: ${key} ${object.metadata.name} has no schema here; add its kubernetes-models class to MODELS`);
  const Model = await load();
  try {
    new Model(object).validate();
  } catch (err) {
    throw new Error(`${where}: ${key} ${object.metadata.name} does not match its OpenAPI schema: ${(err as Error).message}`);
  }
}

/** Renders beyond the ci/ files: every optional object switched on at least once. */
const VARIANTS: Record<string, string[]> = {
  'everything on, external NATS': [
    'nats.enabled=false', 'nats.url=nats://nats.messaging:4222', 'autoscale.enabled=true', 'metrics.release=kps',
    'metrics.serviceMonitor.enabled=true', 'metrics.prometheusRule.enabled=true', 'metrics.grafanaDashboard.enabled=true',
    'coordinator.dataset.download.enabled=true', 'workers.gpu.count=2', 'sweep.enabled=true',
  ],
  'network policies off, no preStop': ['networkPolicy.enabled=false', 'workers.preStopDrain=false'],
};

describe('helm chart: every rendered manifest matches the Kubernetes OpenAPI schemas', function () {
  let helm: Helm;

  before(() => {
    helm = Helm.create();
  });

  after(() => helm?.dispose());

  it('the validators reject what a cluster would reject (a string port, a rule without expr)', async () => {
    const sts = {
      apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'broken' },
      spec: { selector: {}, serviceName: 's', template: { spec: { containers: [{ name: 'c', image: 'i', ports: [{ containerPort: 'grpc' }] }] } } },
    };
    await assert.rejects(validate(sts, 'probe'), /containerPort must be integer/);
    const rule = {
      apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule', metadata: { name: 'broken' },
      spec: { groups: [{ name: 'g', rules: [{ alert: 'A' }] }] },
    };
    await assert.rejects(validate(rule, 'probe'), /expr/);
    await assert.rejects(validate({ apiVersion: 'v9', kind: 'Gadget', metadata: { name: 'x' } }, 'probe'), /has no schema here/);
  });

  for (const scenario of ciScenarios()) {
    it(`ci/${scenario}-values.yaml`, async () => {
      const objects = helm.template('ci', [scenarioFile(scenario)]) as Manifest[];
      assert.ok(objects.length >= 8, `${scenario}: only ${objects.length} objects rendered`);
      for (const o of objects) await validate(o, scenario);
    });
  }

  for (const [name, sets] of Object.entries(VARIANTS)) {
    it(`--set variant: ${name}`, async () => {
      const objects = helm.template('ci', [], sets) as Manifest[];
      for (const o of objects) await validate(o, name);
    });
  }
});
