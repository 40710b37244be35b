/**
 * A fake Kubernetes API server for tests (real HTTP, the real client library on the other side), the
 * RBAC it enforces from the chart's render, and a StatefulSet controller running real local processes.
 */
export { FakeKubeApi, parseApiPath, scaleOf, type RecordedRequest, type ResourceHandler, type ResourceRequest } from './fake-kube-api';
export { KubeStore, StatusError, type ObjectKey, type StoredObject } from './kube-store';
export { RbacPolicy, forbiddenMessage, ruleAllows, serviceAccountUser, type PolicyRule, type RequestAttributes } from './rbac';
export { applyWorkerStatefulSet, renderChart, onlyOf, type RenderedObject } from './chart-render';
export { FakeStatefulSetController, type FakePod, type PodEvent, type StatefulSetControllerOptions } from './statefulset-controller';
export { writeKubeconfig } from './kubeconfig';
export { FAKE_COORDINATOR_USER, FAKE_NAMESPACE, FAKE_RELEASE, FAKE_WORKERS, startFakeCluster, type FakeCluster } from './fake-cluster';
export { selfSignedCertificate } from './self-signed';
export { labelMatcher, objectRoute, type ObjectRouteOptions } from './object-routes';
export { FakeJobController, type JobControllerOptions } from './job-controller';
export { FakeReleaseKubelet, type ReleaseKubeletOptions } from './release-kubelet';
export { FAKE_SWEEP_NAME, FAKE_SWEEP_USER, startFakeSweepCluster, type FakeSweepCluster } from './fake-sweep-cluster';
