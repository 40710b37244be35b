/**
 * Scaling through the Kubernetes API: the workers' StatefulSet is scaled by patching its `scale`
 * subresource with `@kubernetes/client-node` (an ES module, loaded by a dynamic import that survives the
 * CommonJS build). `shardwise scale` and the coordinator's autoscaler use it.
 */
export { loadKubeClient, KUBE_CLIENT_PACKAGE, type KubeClientModule } from './client-loader';
export { filledBuiltins } from './node20-compat';
export { KubeApiError, KubeConfigError } from './errors';
export { describeApiError, MERGE_PATCH, requiredRule, type KubeCall } from './api-errors';
export { describeResourceError, requiredResourceRule, type ResourceCall } from './resource-errors';
export {
  findKubeconfig,
  inCluster,
  loadKubeAccess,
  NAMESPACE_ENV,
  WORKER_STATEFULSET_ENV,
  type KubeAccess,
  type KubeAccessOptions,
} from './kube-config';
export {
  SCALE_CONFLICT_ATTEMPTS,
  StatefulSetScaler,
  type ScaleChange,
  type StatefulSetScalerOptions,
  type WorkerScale,
} from './statefulset-scaler';
