import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describeApiError, KubeApiError, loadKubeClient, MERGE_PATCH, SCALE_CONFLICT_ATTEMPTS, StatefulSetScaler } from '../common/kube';
import { FakeKubeApi, onlyOf, RbacPolicy, renderChart, type RenderedObject, selfSignedCertificate, serviceAccountUser, writeKubeconfig } from './support/fake-kube';

const NAMESPACE = 'training';
const RELEASE = 'demo';
const WORKERS = 'demo-shardwise-worker';
const COORDINATOR_TOKEN = 'coordinator-token';

// `shardwise scale` and the autoscaler's client against the fake API server: real HTTP, the real
// client-node, RBAC from the Role the chart renders.
describe('kube: StatefulSetScaler against the fake API server', function () {
  this.timeout(60_000);
  let rendered: RenderedObject[];
  let api: FakeKubeApi;
  let dir: string;
  let kubeconfig: string;

  before(async () => {
    rendered = await renderChart(RELEASE, NAMESPACE, ['autoscale.enabled=true']);
  });

  beforeEach(async () => {
    api = await FakeKubeApi.start({
      policy: new RbacPolicy(rendered, NAMESPACE),
      tokens: { [COORDINATOR_TOKEN]: serviceAccountUser(NAMESPACE, 'demo-shardwise-coordinator') },
    });
    const sts = onlyOf(rendered, 'StatefulSet');
    api.store.put({ apiGroup: 'apps', resource: 'statefulsets', namespace: NAMESPACE }, { ...sts, metadata: { name: sts.metadata.name, namespace: NAMESPACE } });
    dir = mkdtempSync(path.join(tmpdir(), 'shardwise-kube-'));
    kubeconfig = writeKubeconfig(path.join(dir, 'kubeconfig'), { server: api.url, token: COORDINATOR_TOKEN, namespace: NAMESPACE });
  });

  afterEach(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const connect = (statefulSet = WORKERS, file = kubeconfig): Promise<StatefulSetScaler> => StatefulSetScaler.connect({ kubeconfig: file, statefulSet });
  const replicas = (): unknown => (api.store.get({ apiGroup: 'apps', resource: 'statefulsets', namespace: NAMESPACE, name: WORKERS }).spec as { replicas: unknown }).replicas;

  it('the chart renders a Role scoped to its own worker StatefulSet', async () => {
    const role = onlyOf(rendered, 'Role') as RenderedObject & { rules: unknown[] };
    assert.deepEqual(role.rules, [
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['apps'], resources: ['statefulsets/scale'], resourceNames: [WORKERS], verbs: ['get', 'patch'] },
    ]);
    const coordinator = rendered.find((o) => o.kind === 'Deployment' && o.metadata.name === 'demo-shardwise-coordinator');
    const pod = (coordinator?.spec as { template: { spec: { serviceAccountName: string; containers: Array<{ env: Array<{ name: string; value?: string }> }> } } }).template.spec;
    assert.equal(pod.serviceAccountName, 'demo-shardwise-coordinator');
    assert.equal(pod.containers[0].env.find((e) => e.name === 'SHARDWISE_WORKER_STATEFULSET')?.value, WORKERS);
    // Without autoscale: no Role, and the ServiceAccount mounts no token.
    const plain = await renderChart(RELEASE, NAMESPACE);
    assert.equal(plain.filter((o) => o.kind === 'Role' || o.kind === 'RoleBinding').length, 0);
    assert.equal(onlyOf(plain, 'ServiceAccount').automountServiceAccountToken, false);
  });

  it('reads the scale, then merge-patches spec.replicas with the resourceVersion it read', async () => {
    const scaler = await connect();
    assert.equal(scaler.target, `${NAMESPACE}/${WORKERS}`);
    const change = await scaler.scaleTo(3);
    assert.deepEqual(change, { from: 2, to: 3, patches: 1 });
    assert.equal(replicas(), 3);
    const [get, patch] = api.requests;
    assert.deepEqual([get.method, get.path, get.status], ['GET', `/apis/apps/v1/namespaces/${NAMESPACE}/statefulsets/${WORKERS}/scale`, 200]);
    assert.equal(patch.method, 'PATCH');
    assert.equal(patch.contentType, MERGE_PATCH);
    assert.equal(patch.status, 200);
    const body = patch.body as { spec: { replicas: number }; metadata: { resourceVersion: string } };
    assert.equal(body.spec.replicas, 3);
    assert.match(body.metadata.resourceVersion, /^\d+$/);
    // Already there: read only, no patch.
    assert.deepEqual(await scaler.scaleTo(3), { from: 3, to: 3, patches: 0 });
    assert.equal(api.requests.length, 3);
  });

  it('over HTTPS, verifying the server against the kubeconfig\'s CA as in a real cluster; a wrong CA is refused', async () => {
    const tls = selfSignedCertificate();
    const secure = await FakeKubeApi.start({ policy: new RbacPolicy(rendered, NAMESPACE), tokens: { [COORDINATOR_TOKEN]: serviceAccountUser(NAMESPACE, 'demo-shardwise-coordinator') }, tls });
    try {
      const sts = onlyOf(rendered, 'StatefulSet');
      secure.store.put({ apiGroup: 'apps', resource: 'statefulsets', namespace: NAMESPACE }, { ...sts, metadata: { name: sts.metadata.name, namespace: NAMESPACE } });
      const trusted = writeKubeconfig(path.join(dir, 'tls'), { server: secure.url, token: COORDINATOR_TOKEN, namespace: NAMESPACE, caPem: tls.cert });
      assert.deepEqual(await (await connect(WORKERS, trusted)).scaleTo(4), { from: 2, to: 4, patches: 1 });
      const other = writeKubeconfig(path.join(dir, 'other-ca'), { server: secure.url, token: COORDINATOR_TOKEN, namespace: NAMESPACE, caPem: selfSignedCertificate().cert });
      const err = await (await connect(WORKERS, other)).read().then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof KubeApiError, String(err));
      assert.match(err.message, /cannot reach the Kubernetes API at https:\/\/127\.0\.0\.1:\d+ .*certificate/);
    } finally {
      await secure.close();
    }
  });

  it('403: a StatefulSet outside the Role\'s resourceNames; the message names the missing rule', async () => {
    api.store.put({ apiGroup: 'apps', resource: 'statefulsets', namespace: NAMESPACE }, { metadata: { name: 'other', namespace: NAMESPACE }, spec: { replicas: 1 } });
    const scaler = await connect('other');
    const err = await scaler.scaleTo(2).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof KubeApiError, String(err));
    assert.equal(err.status, 403);
    assert.match(err.message, /forbidden \(403\): user 'test-user' of .* may not get statefulsets\/scale "other" in namespace "training"/);
    assert.match(err.message, /resourceNames: \["other"\], verbs: \["get"\]/);
    assert.match(err.message, /cannot get resource "statefulsets\/scale" in API group "apps"/);
    assert.equal(api.requests.filter((r) => r.method === 'PATCH').length, 0);
  });

  it('403 on the patch alone when the Role grants get but not patch', async () => {
    const readOnly = rendered.map((o) => o.kind !== 'Role' ? o : { ...o, rules: [{ apiGroups: ['apps'], resources: ['statefulsets/scale'], resourceNames: [WORKERS], verbs: ['get'] }] });
    api.setPolicy(new RbacPolicy(readOnly, NAMESPACE));
    const err = await (await connect()).scaleTo(4).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof KubeApiError, String(err));
    assert.equal(err.verb, 'patch');
    assert.match(err.message, /may not patch statefulsets\/scale "demo-shardwise-worker".*verbs: \["patch"\]/);
    assert.equal(replicas(), 2);
  });

  it('404: the Role allows the name but no such StatefulSet exists; the message names the object', async () => {
    api.store.delete({ apiGroup: 'apps', resource: 'statefulsets', namespace: NAMESPACE, name: WORKERS });
    const err = await (await connect()).scaleTo(3).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof KubeApiError, String(err));
    assert.equal(err.status, 404);
    assert.match(err.message, /not found \(404\): no StatefulSet "demo-shardwise-worker" in namespace "training" on http:\/\/127\.0\.0\.1:\d+/);
    assert.match(err.message, /statefulsets\.apps "demo-shardwise-worker" not found/);
  });

  it('409: another writer scales between the read and the patch; the patch is retried, not reported', async () => {
    let interleaved = 0;
    api.onRequest((r) => {
      // The first read is followed by someone else's write (a status update, as the controller makes).
      if (r.method === 'GET' && interleaved++ === 0) {
        api.store.update({ apiGroup: 'apps', resource: 'statefulsets', namespace: NAMESPACE, name: WORKERS }, (o) => ({ ...o, status: { replicas: 2 } }));
      }
    });
    const change = await (await connect()).scaleTo(5);
    assert.deepEqual(change, { from: 2, to: 5, patches: 2 });
    assert.deepEqual(api.requests.map((r) => `${r.method} ${r.status}`), ['GET 200', 'PATCH 409', 'GET 200', 'PATCH 200']);
    assert.equal(replicas(), 5);
  });

  it('409 on every attempt ends, after the retries, in an error naming the conflict', async () => {
    api.onRequest((r) => {
      if (r.method === 'GET') api.store.update({ apiGroup: 'apps', resource: 'statefulsets', namespace: NAMESPACE, name: WORKERS }, (o) => ({ ...o }));
    });
    const err = await (await connect()).scaleTo(5).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof KubeApiError, String(err));
    assert.equal(err.status, 409);
    assert.match(err.message, /conflict \(409\): the scale of training\/demo-shardwise-worker kept changing/);
    assert.equal(api.requestsFor('patch', 'statefulsets/scale').length, SCALE_CONFLICT_ATTEMPTS);
  });

  it('415: the server refuses a PATCH that is not a patch type; client-node\'s default JSON patch is refused too', async () => {
    const k8s = await loadKubeClient();
    const config = new k8s.KubeConfig();
    config.loadFromFile(kubeconfig);
    const apps = config.makeApiClient(k8s.AppsV1Api);
    const call = { name: WORKERS, namespace: NAMESPACE, body: { spec: { replicas: 4 } } };
    const asJson = await apps.patchNamespacedStatefulSetScale(call, k8s.setHeaderOptions('Content-Type', 'application/json')).then(() => undefined, (e: unknown) => e);
    assert.ok(asJson instanceof k8s.ApiException);
    assert.equal(asJson.code, 415);
    // Without the header the client sends JSON patch, which needs an array of operations: why the scaler sets it.
    const byDefault = await apps.patchNamespacedStatefulSetScale(call).then(() => undefined, (e: unknown) => e);
    assert.ok(byDefault instanceof k8s.ApiException);
    assert.equal(byDefault.code, 400);
    assert.equal(api.requests.at(-1)?.contentType, 'application/json-patch+json');
    assert.equal(replicas(), 2);
    const described = describeApiError(k8s, asJson, { verb: 'patch', namespace: NAMESPACE, statefulSet: WORKERS, server: api.url, user: 'test' });
    assert.ok(described instanceof KubeApiError);
    assert.match(described.message, /unsupported media type \(415\).*must be sent as application\/merge-patch\+json/);
  });

  it('401 for a token the server does not know; a stopped server is "cannot reach"', async () => {
    const wrong = writeKubeconfig(path.join(dir, 'wrong'), { server: api.url, token: 'nobody', namespace: NAMESPACE });
    const unauthorized = await (await connect(WORKERS, wrong)).read().then(() => undefined, (e: unknown) => e);
    assert.ok(unauthorized instanceof KubeApiError);
    assert.equal(unauthorized.status, 401);
    const scaler = await connect();
    await api.close();
    const unreachable = await scaler.scaleTo(3).then(() => undefined, (e: unknown) => e);
    assert.ok(unreachable instanceof KubeApiError, String(unreachable));
    assert.equal(unreachable.status, undefined);
    assert.match(unreachable.message, /cannot reach the Kubernetes API at http:\/\/127\.0\.0\.1:\d+ to get statefulsets\/scale .*ECONNREFUSED/);
  });
});
