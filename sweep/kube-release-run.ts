/**
 * A multi-worker trial on Kubernetes: the objects of its chart release (kube-trial-release.ts) created
 * through the API (the coordinator and workers once the bundled NATS pod is Ready), watched through its run directory on the shared volume (the coordinator writes
 * `summary.json` there when the job is done) and its pods (a container that terminated with an error or
 * restarted fails the trial with its exit code and message), and deleted when it ends. Stopping deletes
 * in the foreground and waits until the objects are gone, so the coordinator's drain checkpoint is written
 * before a resumed sweep starts the trial again on the same run directory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { RUN_FILES } from '../common';
import type { TrialRunRequest } from './executor';
import { SWEEP_LABEL, TRIAL_LABEL } from './kube-trial-job';
import type { TrialObject } from './kube-trial-release';
import { WatchedTrialRun } from './watched-run';

type Propagation = 'Foreground' | 'Background';

/** The typed client calls of one kind of a trial release. */
interface KindApi {
  group: string;
  resource: string;
  create(namespace: string, body: TrialObject): Promise<unknown>;
  remove(namespace: string, name: string, propagationPolicy: Propagation): Promise<unknown>;
  list(namespace: string, labelSelector: string): Promise<{ items: Array<{ metadata?: { name?: string } }> }>;
}

/** The API of every kind a trial release holds. */
export function releaseKinds(core: CoreV1Api, apps: AppsV1Api): Record<string, KindApi> {
  /* eslint-disable @typescript-eslint/no-explicit-any -- the rendered objects are checked by the API server, not by these types */
  const b = (o: TrialObject): any => o;
  return {
    ServiceAccount: { group: '', resource: 'serviceaccounts',
      create: (namespace, body) => core.createNamespacedServiceAccount({ namespace, body: b(body) }),
      remove: (namespace, name, propagationPolicy) => core.deleteNamespacedServiceAccount({ namespace, name, propagationPolicy }),
      list: (namespace, labelSelector) => core.listNamespacedServiceAccount({ namespace, labelSelector }) },
    ConfigMap: { group: '', resource: 'configmaps',
      create: (namespace, body) => core.createNamespacedConfigMap({ namespace, body: b(body) }),
      remove: (namespace, name, propagationPolicy) => core.deleteNamespacedConfigMap({ namespace, name, propagationPolicy }),
      list: (namespace, labelSelector) => core.listNamespacedConfigMap({ namespace, labelSelector }) },
    Service: { group: '', resource: 'services',
      create: (namespace, body) => core.createNamespacedService({ namespace, body: b(body) }),
      remove: (namespace, name, propagationPolicy) => core.deleteNamespacedService({ namespace, name, propagationPolicy }),
      list: (namespace, labelSelector) => core.listNamespacedService({ namespace, labelSelector }) },
    StatefulSet: { group: 'apps', resource: 'statefulsets',
      create: (namespace, body) => apps.createNamespacedStatefulSet({ namespace, body: b(body) }),
      remove: (namespace, name, propagationPolicy) => apps.deleteNamespacedStatefulSet({ namespace, name, propagationPolicy }),
      list: (namespace, labelSelector) => apps.listNamespacedStatefulSet({ namespace, labelSelector }) },
    Deployment: { group: 'apps', resource: 'deployments',
      create: (namespace, body) => apps.createNamespacedDeployment({ namespace, body: b(body) }),
      remove: (namespace, name, propagationPolicy) => apps.deleteNamespacedDeployment({ namespace, name, propagationPolicy }),
      list: (namespace, labelSelector) => apps.listNamespacedDeployment({ namespace, labelSelector }) },
  };
  /* eslint-enable @typescript-eslint/no-explicit-any */
}

/** What a release run needs from the executor. */
export interface ReleaseHost {
  readonly namespace: string;
  readonly pollMs: number;
  readonly kinds: Record<string, KindApi>;
  /** Runs an API call, turning an API error into one naming the verb and the rule. */
  call<T>(what: { verb: string; group: string; resource: string; name?: string }, run: () => Promise<T>): Promise<T>;
  /** Whether the error is a 404. */
  isNotFound(err: unknown): boolean;
  /** Whether a pod with `labelSelector` is Ready (its readiness probe passed). */
  podReady(labelSelector: string): Promise<boolean>;
  /** A failed container of the pods with `labelSelector`, described; undefined when none failed. */
  failedContainer(labelSelector: string): Promise<string | undefined>;
  pause(ms: number): Promise<void>;
}

/** Lists the objects of every release kind carrying `labelSelector`. */
export async function listReleaseObjects(host: ReleaseHost, labelSelector: string): Promise<Array<{ kind: string; name: string }>> {
  const found = await Promise.all(Object.entries(host.kinds).map(async ([kind, api]) => {
    const list = await host.call({ verb: 'list', group: api.group, resource: api.resource }, () => api.list(host.namespace, labelSelector));
    return list.items.map((o) => ({ kind, name: o.metadata?.name ?? '' }));
  }));
  return found.flat();
}

/** Deletes the objects carrying `labelSelector` and, in the foreground, waits until they are gone. */
export async function deleteReleaseObjects(host: ReleaseHost, labelSelector: string, propagation: Propagation): Promise<void> {
  for (let first = true; ; first = false) {
    const left = await listReleaseObjects(host, labelSelector);
    if (left.length === 0 || (!first && propagation === 'Background')) return;
    if (first) {
      await Promise.all(left.map(async ({ kind, name }) => {
        const api = host.kinds[kind];
        try {
          await host.call({ verb: 'delete', group: api.group, resource: api.resource, name }, () => api.remove(host.namespace, name, propagation));
        } catch (err) {
          if (!host.isNotFound(err)) throw err;
        }
      }));
      if (propagation === 'Background') return;
    } else {
      await host.pause(host.pollMs);
    }
  }
}

/** The chart's labels: which release an object belongs to, and its role in it. */
const INSTANCE_LABEL = 'app.kubernetes.io/instance';
const COMPONENT_LABEL = 'app.kubernetes.io/component';

/**
 * A release's objects split in two: what is created at once, and the coordinator and worker workloads,
 * created once the bundled NATS server's pod is Ready. The coordinator's first connect to the bus fails at
 * once when nothing answers, and a coordinator that exited with an error fails the trial, so starting both
 * together would fail a trial whenever the NATS pod is slower to start (an image pull). Without a bundled
 * NATS (`nats.url`) everything is created at once.
 */
export function busFirst(objects: readonly TrialObject[]): { now: TrialObject[]; afterBus: TrialObject[] } {
  const isBus = (o: TrialObject): boolean => o.kind === 'Deployment' && o.metadata.labels?.[COMPONENT_LABEL] === 'nats';
  if (!objects.some(isBus)) return { now: [...objects], afterBus: [] };
  const workload = (o: TrialObject): boolean => (o.kind === 'Deployment' || o.kind === 'StatefulSet') && !isBus(o);
  return { now: objects.filter((o) => !workload(o)), afterBus: objects.filter(workload) };
}

/** One multi-worker trial as a chart release. */
export class KubeReleaseRun extends WatchedTrialRun {
  private readonly selector: string;
  /** Creating the objects that waited for the bus; a stop waits for it, so none is created after the delete. */
  private creating: Promise<void> = Promise.resolve();

  /** `afterBus`: the objects to create once the release's NATS pod is Ready (see {@link busFirst}). */
  constructor(private readonly host: ReleaseHost, request: TrialRunRequest, readonly release: string, sweepName: string,
    private afterBus: readonly TrialObject[] = []) {
    super(request);
    this.selector = `${SWEEP_LABEL}=${sweepName},${TRIAL_LABEL}=${request.trialId}`;
    this.watchFromNow();
  }

  /** Creates the release's objects, in order. */
  static async create(host: ReleaseHost, objects: readonly TrialObject[]): Promise<void> {
    for (const o of objects) {
      const api = host.kinds[o.kind];
      await host.call({ verb: 'create', group: api.group, resource: api.resource }, () => api.create(host.namespace, o));
    }
  }

  protected async remove(propagation: 'Foreground' | 'Background'): Promise<void> {
    await this.creating.catch(() => undefined);
    await deleteReleaseObjects(this.host, this.selector, propagation);
  }

  protected async watch(): Promise<void> {
    const what = `release ${this.release} (${this.request.workers} workers)`;
    try {
      while (!this.stopping) {
        if (this.afterBus.length > 0 && (await this.host.podReady(`${INSTANCE_LABEL}=${this.release},${COMPONENT_LABEL}=nats`)) && !this.stopping) {
          this.creating = KubeReleaseRun.create(this.host, this.afterBus);
          this.afterBus = [];
          await this.creating;
        }
        if (fs.existsSync(path.join(this.request.runsDir, RUN_FILES.summary))) {
          this.result = { succeeded: true, what: `${what} finished`, detail: '' };
          break;
        }
        const failed = await this.host.failedContainer(`${INSTANCE_LABEL}=${this.release}`);
        if (failed !== undefined) {
          this.result = { succeeded: false, what: `${what} failed`, detail: failed };
          break;
        }
        await this.host.pause(this.host.pollMs);
      }
      if (this.stopping) {
        this.result = { succeeded: false, what: `${what} was stopped`, detail: 'stopped by the sweep' };
        return;
      }
      await deleteReleaseObjects(this.host, this.selector, 'Background');
    } catch (err) {
      this.result = { succeeded: false, what, detail: (err as Error).message, error: err as Error };
    }
  }
}
