import type { AppsV1Api } from '@kubernetes/client-node';
import { retryTransient } from '../retry';
import { type KubeClientModule, loadKubeClient } from './client-loader';
import { describeApiError, isConflict, type KubeCall, MERGE_PATCH } from './api-errors';
import { type KubeAccessOptions, loadKubeAccess } from './kube-config';

/** Attempts of a scale patch that meets 409 Conflict (another writer got in between the read and the patch). */
export const SCALE_CONFLICT_ATTEMPTS = 5;

/** Which StatefulSet to scale, and how to reach the API server. */
export interface StatefulSetScalerOptions extends KubeAccessOptions {
  /** The workers' StatefulSet (the chart's `<release>-shardwise-worker`). */
  statefulSet: string;
}

/** The scale subresource of the StatefulSet as read. */
export interface WorkerScale {
  /** spec.replicas: the pods wanted. */
  replicas: number;
  /** status.replicas: the pods the controller has now. */
  currentReplicas: number;
  resourceVersion: string | undefined;
}

/** What {@link StatefulSetScaler.scaleTo} did. */
export interface ScaleChange {
  from: number;
  to: number;
  /** Patches sent: 1, more after conflicts, 0 when the count already was `to`. */
  patches: number;
}

/**
 * Scales the workers' StatefulSet through its `scale` subresource, as `kubectl scale` does: reads it, then
 * sends a merge patch of spec.replicas carrying the resourceVersion it read. A 409 (someone scaled in
 * between) is retried from the read; 401/403/404 end in an error naming the credentials, the RBAC rule
 * or the object that is missing.
 */
export class StatefulSetScaler {
  private constructor(
    private readonly k8s: KubeClientModule,
    private readonly apps: AppsV1Api,
    private readonly call: Omit<KubeCall, 'verb'>,
  ) {}

  /** Loads the client library and the configuration (kubeconfig or the pod's ServiceAccount). */
  static async connect(options: StatefulSetScalerOptions): Promise<StatefulSetScaler> {
    const k8s = await loadKubeClient();
    const access = loadKubeAccess(k8s, options);
    return new StatefulSetScaler(k8s, access.config.makeApiClient(k8s.AppsV1Api), {
      namespace: access.namespace,
      statefulSet: options.statefulSet,
      server: access.server,
      user: access.user,
    });
  }

  /** `<namespace>/<statefulset>`. */
  get target(): string {
    return `${this.call.namespace}/${this.call.statefulSet}`;
  }

  /** Reads the scale subresource. */
  async read(): Promise<WorkerScale> {
    const scale = await this.request('get', () =>
      this.apps.readNamespacedStatefulSetScale({ name: this.call.statefulSet, namespace: this.call.namespace }));
    return {
      replicas: scale.spec?.replicas ?? 0,
      currentReplicas: scale.status?.replicas ?? 0,
      resourceVersion: scale.metadata?.resourceVersion,
    };
  }

  /** Sets spec.replicas to `replicas` (a no-op when it already is), retrying conflicts. */
  async scaleTo(replicas: number): Promise<ScaleChange> {
    let patches = 0;
    let from = -1;
    try {
      await retryTransient(async () => {
        const current = await this.read();
        if (from < 0) from = current.replicas;
        if (current.replicas === replicas) return;
        patches++;
        await this.patch(replicas, current.resourceVersion);
      }, { isTransient: (err) => isConflict(this.k8s, err), maxAttempts: SCALE_CONFLICT_ATTEMPTS, initialDelayMs: 50, maxDelayMs: 1000 });
    } catch (err) {
      throw describeApiError(this.k8s, err, { ...this.call, verb: 'patch' });
    }
    return { from, to: replicas, patches };
  }

  private patch(replicas: number, resourceVersion: string | undefined): Promise<unknown> {
    // client-node sends PATCH bodies as JSON patch unless told otherwise; this body is a merge patch.
    const options = this.k8s.setHeaderOptions('Content-Type', MERGE_PATCH);
    return this.apps.patchNamespacedStatefulSetScale(
      {
        name: this.call.statefulSet,
        namespace: this.call.namespace,
        body: { metadata: { resourceVersion }, spec: { replicas } },
      },
      options,
    );
  }

  /** Runs a call; errors other than a conflict become {@link KubeApiError}s (a conflict is left to the retry). */
  private async request<T>(verb: KubeCall['verb'], run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw isConflict(this.k8s, err) ? err : describeApiError(this.k8s, err, { ...this.call, verb });
    }
  }
}
