import { ConfigError, NAMESPACE_ENV, StatefulSetScaler, WORKER_STATEFULSET_ENV } from '../common';

/** Flags of `shardwise scale` when it acts through the Kubernetes API. */
export interface KubernetesScaleFlags {
  workers: number;
  statefulset?: string;
  namespace?: string;
  kubeconfig?: string;
}

/**
 * `shardwise scale` in a cluster: patches the scale of the workers' StatefulSet, as `kubectl scale` does,
 * with the kubeconfig's (or the pod's) credentials and RBAC. Returns the line to print.
 */
export async function scaleStatefulSet(flags: KubernetesScaleFlags, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const statefulSet = flags.statefulset ?? env[WORKER_STATEFULSET_ENV];
  if (!statefulSet) {
    throw new ConfigError('--statefulset', `expected the workers' StatefulSet (the chart's <release>-shardwise-worker) or $${WORKER_STATEFULSET_ENV}; ` +
      'for a local cluster pass --coordinator HOST:PORT instead');
  }
  const scaler = await StatefulSetScaler.connect({
    statefulSet,
    namespace: flags.namespace ?? env[NAMESPACE_ENV],
    kubeconfig: flags.kubeconfig,
  });
  const change = await scaler.scaleTo(flags.workers);
  return change.patches === 0
    ? `statefulset ${scaler.target}: already ${change.to} replicas`
    : `statefulset ${scaler.target}: replicas ${change.from} -> ${change.to}; removed pods drain (SIGTERM) before they exit`;
}
