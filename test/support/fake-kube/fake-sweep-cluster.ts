/**
 * The chart installed with `sweep.enabled=true` on a fake API server, for the sweep's Kubernetes executor:
 * the sweep ServiceAccount's Role enforced, its ReadWriteMany claim stored (standing for a local folder),
 * Jobs and the kinds of a trial release (each validated against its kubernetes-models schema), pods and
 * claims served, a Job controller running each trial pod as a real `shardwise` process, and a kubelet
 * running a release's Deployment and StatefulSet pods as real processes (`shardwise coordinator`,
 * `shardwise worker`, `nats-server`), their Service addresses and ports translated to local ones.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ManagedChild } from '../../../launcher';
import { compiledShardwise } from '../compiled-shardwise';
import { onlyOf, renderChart, type RenderedObject } from './chart-render';
import { FakeKubeApi } from './fake-kube-api';
import { FAKE_NAMESPACE, FAKE_RELEASE } from './fake-cluster';
import { FakeJobController } from './job-controller';
import { writeKubeconfig } from './kubeconfig';
import { objectRoute } from './object-routes';
import { RbacPolicy, serviceAccountUser } from './rbac';
import { FakeReleaseKubelet } from './release-kubelet';

/** What the chart names the sweep's ServiceAccount, Role and claim for release `demo`. */
export const FAKE_SWEEP_NAME = 'demo-shardwise-sweep';
/** The user the sweep ServiceAccount's token authenticates as. */
export const FAKE_SWEEP_USER = serviceAccountUser(FAKE_NAMESPACE, FAKE_SWEEP_NAME);

/** A running fake install for sweeps. */
export interface FakeSweepCluster {
  api: FakeKubeApi;
  controller: FakeJobController;
  /** Runs the pods of a multi-worker trial's release. */
  kubelet: FakeReleaseKubelet;
  /** kubeconfig with the sweep ServiceAccount's token. */
  kubeconfig: string;
  /** The chart's objects as rendered (a test renders a changed Role from them). */
  rendered: RenderedObject[];
  /** Stops the pods, then the API server. */
  close(): Promise<void>;
}

/** Installs the chart with the sweep enabled; the shared claim is the local folder `sharedDir`. */
export async function startFakeSweepCluster(options: { dir: string; sharedDir: string }): Promise<FakeSweepCluster> {
  const rendered = await renderChart(FAKE_RELEASE, FAKE_NAMESPACE, ['sweep.enabled=true']);
  const token = 'sweep-token';
  const api = await FakeKubeApi.start({ policy: new RbacPolicy(rendered, FAKE_NAMESPACE), tokens: { [token]: FAKE_SWEEP_USER } });
  // ESM-only: loaded with import(), as the helm-schemas test does. Every created object is checked against its schema.
  type Model = new (data: object) => { validate(): void };
  const models = {
    Job: ((await import('kubernetes-models/batch/v1/Job')) as unknown as { Job: Model }).Job,
    ServiceAccount: ((await import('kubernetes-models/v1/ServiceAccount')) as unknown as { ServiceAccount: Model }).ServiceAccount,
    ConfigMap: ((await import('kubernetes-models/v1/ConfigMap')) as unknown as { ConfigMap: Model }).ConfigMap,
    Service: ((await import('kubernetes-models/v1/Service')) as unknown as { Service: Model }).Service,
    StatefulSet: ((await import('kubernetes-models/apps/v1/StatefulSet')) as unknown as { StatefulSet: Model }).StatefulSet,
    Deployment: ((await import('kubernetes-models/apps/v1/Deployment')) as unknown as { Deployment: Model }).Deployment,
  };
  const served: Array<[group: string, resource: string, kind: keyof typeof models, apiVersion: string]> = [
    ['batch', 'jobs', 'Job', 'batch/v1'], ['', 'serviceaccounts', 'ServiceAccount', 'v1'], ['', 'configmaps', 'ConfigMap', 'v1'],
    ['', 'services', 'Service', 'v1'], ['apps', 'statefulsets', 'StatefulSet', 'apps/v1'], ['apps', 'deployments', 'Deployment', 'apps/v1'],
  ];
  for (const [group, resource, kind, apiVersion] of served) {
    api.serve(group, resource, undefined, objectRoute(group, resource, { kind, apiVersion, validate: (o) => new models[kind](o).validate(), hasDependents: kind === 'Job' || kind === 'Deployment' || kind === 'StatefulSet' }));
  }
  api.serve('', 'pods', undefined, objectRoute('', 'pods', { kind: 'Pod', apiVersion: 'v1' }));
  api.serve('', 'persistentvolumeclaims', undefined, objectRoute('', 'persistentvolumeclaims', { kind: 'PersistentVolumeClaim', apiVersion: 'v1' }));
  const claim = onlyOf(rendered.filter((o) => o.metadata.name === FAKE_SWEEP_NAME), 'PersistentVolumeClaim');
  api.store.put({ apiGroup: '', resource: 'persistentvolumeclaims', namespace: FAKE_NAMESPACE }, { ...claim, metadata: { ...claim.metadata, namespace: FAKE_NAMESPACE } });
  const shardwise = compiledShardwise();
  const controller = new FakeJobController({
    store: api.store,
    namespace: FAKE_NAMESPACE,
    volumes: { [FAKE_SWEEP_NAME]: options.sharedDir },
    spawn: (pod, args, env) => ManagedChild.spawn({ name: pod, command: shardwise.command, args: [...shardwise.args, ...args], env: { ...process.env, ...env }, historyLines: 200 }),
  });
  const kubelet = new FakeReleaseKubelet({
    store: api.store,
    namespace: FAKE_NAMESPACE,
    claims: { [FAKE_SWEEP_NAME]: options.sharedDir },
    scratchDir: fs.mkdtempSync(path.join(options.dir, 'pods-')),
    spawn: (pod, image, args, env) => {
      // The bundled NATS image's entrypoint is nats-server; every other image is shardwise's.
      const entry = /(^|\/)nats:/.test(image) ? { command: 'nats-server', args: [] } : shardwise;
      return ManagedChild.spawn({ name: pod, command: entry.command, args: [...entry.args, ...args], env: { ...process.env, ...env }, historyLines: 200 });
    },
  });
  const kubeconfig = writeKubeconfig(path.join(options.dir, 'sweep-kubeconfig'), { server: api.url, token, namespace: FAKE_NAMESPACE });
  return {
    api,
    controller,
    kubelet,
    kubeconfig,
    rendered,
    close: async () => {
      await Promise.all([controller.stopAll(), kubelet.stopAll()]);
      await api.close();
    },
  };
}
