/**
 * The chart "installed" on the fake API server: rendered with autoscale on, its Role enforced, its worker
 * StatefulSet stored with `replicas`, a controller running its pods as local processes, and a kubeconfig
 * holding the coordinator ServiceAccount's token.
 */
import * as path from 'node:path';
import type { ManagedChild } from '../../../launcher';
import { onlyOf, renderChart } from './chart-render';
import { FakeKubeApi } from './fake-kube-api';
import { RbacPolicy, serviceAccountUser } from './rbac';
import { FakeStatefulSetController } from './statefulset-controller';
import { writeKubeconfig } from './kubeconfig';

/** Release and namespace every fake install uses. */
export const FAKE_RELEASE = 'demo';
export const FAKE_NAMESPACE = 'training';
/** What the chart names things for release `demo`. */
export const FAKE_WORKERS = 'demo-shardwise-worker';
export const FAKE_COORDINATOR_USER = serviceAccountUser(FAKE_NAMESPACE, 'demo-shardwise-coordinator');

/** A running fake install. */
export interface FakeCluster {
  api: FakeKubeApi;
  controller: FakeStatefulSetController;
  /** kubeconfig with the coordinator ServiceAccount's token. */
  kubeconfig: string;
  /** Stops the pods, then the API server. */
  close(): Promise<void>;
}

/** Installs the chart on a fake API server; the StatefulSet's pods are started with `startPod`. */
export async function startFakeCluster(options: { dir: string; replicas: number; startPod: (name: string) => Promise<ManagedChild> }): Promise<FakeCluster> {
  const rendered = await renderChart(FAKE_RELEASE, FAKE_NAMESPACE, ['autoscale.enabled=true']);
  const token = 'coordinator-token';
  const api = await FakeKubeApi.start({ policy: new RbacPolicy(rendered, FAKE_NAMESPACE), tokens: { [token]: FAKE_COORDINATOR_USER } });
  const sts = onlyOf(rendered, 'StatefulSet');
  const spec = sts.spec as { podManagementPolicy: 'Parallel' | 'OrderedReady'; template: { spec: { terminationGracePeriodSeconds: number } } };
  const controller = new FakeStatefulSetController({
    store: api.store,
    namespace: FAKE_NAMESPACE,
    name: FAKE_WORKERS,
    startPod: options.startPod,
    terminationGraceMs: spec.template.spec.terminationGracePeriodSeconds * 1000,
    podManagementPolicy: spec.podManagementPolicy,
  });
  api.store.put({ apiGroup: 'apps', resource: 'statefulsets', namespace: FAKE_NAMESPACE }, {
    ...sts,
    metadata: { name: FAKE_WORKERS, namespace: FAKE_NAMESPACE },
    spec: { ...spec, replicas: options.replicas },
  });
  const kubeconfig = writeKubeconfig(path.join(options.dir, 'kubeconfig'), { server: api.url, token, namespace: FAKE_NAMESPACE });
  return {
    api,
    controller,
    kubeconfig,
    close: async () => {
      await controller.stopAll();
      await api.close();
    },
  };
}
