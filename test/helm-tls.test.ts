import assert from 'node:assert/strict';
import { Helm, scenarioFile } from './support/helm';

// The chart's mutual TLS wiring (tls.enabled, ci/mtls-values.yaml): each pod mounts from the Secret only
// what its process reads with --tls-dir, every worker pod finds the certificate of its own pod name, the
// CA's key is never mounted, and no credential is rendered into a ConfigMap. helm-schemas.test.ts checks
// the same render against the Kubernetes OpenAPI schemas.

interface Item { key: string; path: string }
interface Volume { name: string; secret?: { secretName: string; defaultMode?: number; items?: Item[] } }
interface Container { args?: string[]; volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }> }
interface K8sObject {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec?: { replicas?: number; template?: { spec: { containers: Container[]; volumes?: Volume[] } } };
}

const TLS_DIR = '/etc/shardwise-tls';

describe('helm chart: mutual TLS from a Secret', function () {
  let helm: Helm;
  let objects: K8sObject[];

  const find = (kind: string, suffix: string): K8sObject => {
    const o = objects.find((x) => x.kind === kind && x.metadata.name.endsWith(suffix));
    assert.ok(o, `no ${kind} *${suffix}`);
    return o;
  };
  /** The TLS volume of a pod template, checked to be mounted read-only where --tls-dir points. */
  const tlsVolume = (o: K8sObject): Item[] => {
    const pod = o.spec?.template?.spec;
    const main = pod?.containers[0];
    assert.ok(main?.args?.includes(`--tls-dir=${TLS_DIR}`), `${o.metadata.name}: args ${main?.args?.join(' ')}`);
    assert.deepEqual(main?.volumeMounts?.find((m) => m.name === 'tls'), { name: 'tls', mountPath: TLS_DIR, readOnly: true });
    const volume = pod?.volumes?.find((v) => v.name === 'tls');
    assert.equal(volume?.secret?.secretName, 'shardwise-credentials', `${o.metadata.name}: the Secret`);
    assert.equal(volume?.secret?.defaultMode, 0o440, `${o.metadata.name}: readable by the pod's fsGroup only`);
    return volume?.secret?.items ?? [];
  };

  before(() => {
    helm = Helm.create();
    objects = helm.template('ci', [scenarioFile('mtls')]) as K8sObject[];
  });
  after(() => helm?.dispose());

  it('the coordinator mounts the CA certificate, its own pair and the join token, never the CA key', () => {
    assert.deepEqual(tlsVolume(find('Deployment', '-coordinator')).map((i) => `${i.key}->${i.path}`), [
      'ca.crt->ca.crt', 'coordinator.crt->coordinator.crt', 'coordinator.key->coordinator.key', 'join-token->join-token',
    ]);
  });

  it('each worker pod finds workers/<its pod name>.crt and .key; none gets the coordinator key or the CA key', () => {
    const sts = find('StatefulSet', '-worker');
    const items = tlsVolume(sts);
    const replicas = sts.spec?.replicas ?? 0;
    assert.equal(replicas, 3);
    assert.ok(sts.spec?.template?.spec.containers[0].args?.includes('--id=$(POD_NAME)'), 'the worker id is its pod name');
    for (let i = 0; i < 4; i++) {
      const pod = `${sts.metadata.name}-${i}`;
      for (const ext of ['crt', 'key']) {
        assert.ok(items.some((it) => it.key === `worker-${pod}.${ext}` && it.path === `workers/${pod}.${ext}`), `${pod}.${ext} in ${JSON.stringify(items)}`);
      }
    }
    assert.deepEqual(items.filter((it) => /ca\.key|coordinator\.key/.test(it.key)), []);
  });

  it('renders no credential into a ConfigMap, and nothing at all without tls.enabled', () => {
    for (const cm of objects.filter((o) => o.kind === 'ConfigMap')) {
      assert.doesNotMatch(JSON.stringify(cm.data ?? {}), /BEGIN (EC |)PRIVATE KEY|BEGIN CERTIFICATE|join-token|tls-dir/, cm.metadata.name);
    }
    const plain = helm.template('ci', [scenarioFile('default')]) as K8sObject[];
    for (const o of plain.filter((x) => x.spec?.template)) {
      const pod = o.spec?.template?.spec;
      assert.ok(!pod?.volumes?.some((v) => v.name === 'tls'), `${o.metadata.name} mounts credentials without tls.enabled`);
      assert.ok(!pod?.containers.some((c) => c.args?.some((a) => a.startsWith('--tls-dir'))), o.metadata.name);
    }
  });
});
