import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import * as path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeClientModule } from './client-loader';
import { KubeConfigError } from './errors';

/** Env var naming the workers' StatefulSet (the chart sets it in the coordinator's pod with autoscale on). */
export const WORKER_STATEFULSET_ENV = 'SHARDWISE_WORKER_STATEFULSET';
/** Env var naming the namespace (the chart sets it from the pod's metadata). */
export const NAMESPACE_ENV = 'SHARDWISE_NAMESPACE';

/** Where a pod finds its own namespace (the ServiceAccount token mount). */
export const IN_CLUSTER_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** How to reach the API server. */
export interface KubeAccessOptions {
  /** A kubeconfig file. @default $KUBECONFIG, then ~/.kube/config, then the pod's ServiceAccount */
  kubeconfig?: string;
  /** The namespace. @default the kubeconfig context's, then the pod's, then `default` */
  namespace?: string;
}

/** A loaded configuration and what error messages say about it. */
export interface KubeAccess {
  config: KubeConfig;
  namespace: string;
  /** The API server URL. */
  server: string;
  /** The kubeconfig user, or `the pod's ServiceAccount`. */
  user: string;
}

/** Whether this process runs in a pod (the variables the kubelet sets for the API Service). */
export function inCluster(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT);
}

/** The kubeconfig that would be used, or undefined when there is none (then only in-cluster config is left). */
export function findKubeconfig(options: KubeAccessOptions, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (options.kubeconfig !== undefined) {
    if (!existsSync(options.kubeconfig)) throw new KubeConfigError(`kubeconfig ${options.kubeconfig}: no such file`);
    return options.kubeconfig;
  }
  const fromEnv = env.KUBECONFIG?.split(path.delimiter).find((f) => f && existsSync(f));
  if (fromEnv) return fromEnv;
  const home = path.join(homedir(), '.kube', 'config');
  return existsSync(home) ? home : undefined;
}

/**
 * Loads the configuration the way kubectl does: an explicit or `$KUBECONFIG`/~/.kube/config file, else
 * the pod's ServiceAccount. Fails, naming both places, when neither exists.
 */
export function loadKubeAccess(k8s: KubeClientModule, options: KubeAccessOptions, env: NodeJS.ProcessEnv = process.env): KubeAccess {
  const config = new k8s.KubeConfig();
  const file = findKubeconfig(options, env);
  if (file !== undefined) {
    try {
      config.loadFromFile(file);
    } catch (err) {
      throw new KubeConfigError(`kubeconfig ${file}: ${(err as Error).message}`, { cause: err });
    }
  } else if (inCluster(env)) {
    config.loadFromCluster();
  } else {
    throw new KubeConfigError(
      'no Kubernetes configuration: no --kubeconfig, $KUBECONFIG or ~/.kube/config, and not running in a pod ' +
        '(KUBERNETES_SERVICE_HOST unset)',
    );
  }
  const cluster = config.getCurrentCluster();
  if (!cluster) throw new KubeConfigError(`kubeconfig ${file ?? '(in-cluster)'}: the current context '${config.getCurrentContext()}' names no cluster`);
  const contextNamespace = config.getContextObject(config.getCurrentContext())?.namespace;
  const podNamespace = file === undefined && existsSync(IN_CLUSTER_NAMESPACE_FILE) ? readFileSync(IN_CLUSTER_NAMESPACE_FILE, 'utf8').trim() : undefined;
  return {
    config,
    namespace: options.namespace ?? contextNamespace ?? podNamespace ?? 'default',
    server: cluster.server,
    user: file === undefined ? "the pod's ServiceAccount" : `user '${config.getCurrentUser()?.name ?? '?'}' of ${file}`,
  };
}
