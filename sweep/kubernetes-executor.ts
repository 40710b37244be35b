/**
 * The Kubernetes executor: each stretch of a one-worker trial is a batch/v1 Job (see kube-trial-job.ts),
 * created through `@kubernetes/client-node`, watched by reading it every poll, and deleted once it ended; a
 * multi-worker trial is the chart's coordinator and worker objects, rendered as a release of its own
 * (kube-trial-release.ts, kube-release-run.ts).
 * Results come back through the sweep folder on the shared ReadWriteMany volume: the pod writes its run
 * folder there and this process reads it as the local executor reads a child's (so a forked trial's pod
 * finds its donor's checkpoint at the same path). A failed pod's termination message (its last log
 * lines) becomes the trial's error.
 *
 * Only the verbs of the chart's role-sweep.yaml are used: jobs create/get/list/delete, pods list, get on
 * the shared claim, and create/list/delete on the kinds of a trial release. A 403 names the verb and the
 * rule to add.
 */
import * as path from 'node:path';
import type { AppsV1Api, BatchV1Api, CoreV1Api, V1ContainerStatus, V1Job } from '@kubernetes/client-node';
import { describeResourceError, type KubeAccessOptions, type KubeClientModule, loadKubeAccess, loadKubeClient, type ResourceCall } from '../common';
import { SweepSpecError } from './errors';
import type { TrialExecutor, TrialRun, TrialRunRequest } from './executor';
import { busFirst, deleteReleaseObjects, KubeReleaseRun, type ReleaseHost, releaseKinds } from './kube-release-run';
import { JOB_NAME_LABEL, SWEEP_LABEL, TRIAL_CONTAINER, trialJobManifest } from './kube-trial-job';
import { renderTrialRelease, trialReleaseName } from './kube-trial-release';
import type { KubernetesExecutorSpec } from './spec-schema';
import type { SweepSpec } from './sweep-spec';
import { WatchedTrialRun } from './watched-run';

/** Where the 403 hint points. */
const GRANTED_BY = "the chart's role-sweep.yaml and rolebinding-sweep.yaml with sweep.enabled=true";

/** How the executor reaches the API server and how often it reads a running Job. */
export interface KubernetesExecutorOptions extends KubeAccessOptions {
  /** @default 1000 */
  pollMs?: number;
}

/** Whether `child` lies inside `parent` (or is it). */
function inside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Runs one-worker trial stretches as Jobs, and multi-worker trials as chart releases, in one namespace. */
export class KubernetesExecutor implements TrialExecutor, ReleaseHost {
  readonly kind = 'kubernetes';
  readonly capacity: number;
  readonly kinds: ReleaseHost['kinds'];
  private readonly runs = new Set<TrialRun>();

  private constructor(
    readonly k8s: KubeClientModule,
    readonly batch: BatchV1Api,
    readonly core: CoreV1Api,
    apps: AppsV1Api,
    readonly namespace: string,
    private readonly access: { server: string; user: string },
    private readonly spec: SweepSpec,
    private readonly settings: KubernetesExecutorSpec,
    readonly pollMs: number,
  ) {
    this.capacity = settings.parallelism;
    this.kinds = releaseKinds(core, apps);
  }

  /**
   * Connects, checks the sweep folder lies on the shared volume and its claim is ReadWriteMany, and deletes
   * the Jobs an earlier run of this sweep left behind (a controller killed mid-trial; those trials resume
   * from their last checkpoint in a new Job).
   */
  static async connect(spec: SweepSpec, options: KubernetesExecutorOptions & { dataDir?: string }): Promise<KubernetesExecutor> {
    const settings = spec.kubernetes;
    if (settings === undefined) {
      throw new SweepSpecError(spec.source, ['executor.kubernetes: required to run trials on Kubernetes (the image and the ReadWriteMany sharedVolume of the trial pods)']);
    }
    const mounts = [settings.sharedVolume.mountPath, ...(settings.dataset ? [settings.dataset.mountPath] : [])];
    const problems: string[] = [];
    if (!inside(settings.sharedVolume.mountPath, spec.dir)) {
      problems.push(`outputDir: the sweep folder ${spec.dir} must lie on the shared volume mounted at ${settings.sharedVolume.mountPath} ` +
        '(executor.kubernetes.sharedVolume.mountPath): trial pods read their job file and write their run folder there');
    }
    if (options.dataDir !== undefined && !mounts.some((m) => inside(m, path.resolve(options.dataDir!)))) {
      problems.push(`--data ${options.dataDir}: trial pods see only ${mounts.join(' and ')}; put CIFAR-10 there or name its claim in executor.kubernetes.dataset`);
    }
    if (problems.length > 0) throw new SweepSpecError(spec.source, problems);
    const k8s = await loadKubeClient();
    const access = loadKubeAccess(k8s, { ...options, namespace: options.namespace ?? settings.namespace });
    const executor = new KubernetesExecutor(k8s, access.config.makeApiClient(k8s.BatchV1Api), access.config.makeApiClient(k8s.CoreV1Api),
      access.config.makeApiClient(k8s.AppsV1Api), access.namespace, access, spec, settings, options.pollMs ?? 1000);
    await executor.checkClaim();
    await executor.deleteLeftovers();
    return executor;
  }

  cost(): number {
    return 1;
  }

  async start(request: TrialRunRequest): Promise<TrialRun> {
    if (request.workers > 1) {
      const release = trialReleaseName(this.spec.name, request.trialId);
      const { now, afterBus } = busFirst(await renderTrialRelease(this.settings, this.spec.name, this.namespace, request));
      await KubeReleaseRun.create(this, now);
      return this.track(new KubeReleaseRun(this, request, release, this.spec.name, afterBus));
    }
    const body = trialJobManifest(this.settings, this.spec.name, this.namespace, request);
    await this.call({ verb: 'create', group: 'batch', resource: 'jobs' }, () => this.batch.createNamespacedJob({ namespace: this.namespace, body }));
    return this.track(new KubeTrialRun(this, request, body.metadata!.name!));
  }

  private track(run: TrialRun): TrialRun {
    this.runs.add(run);
    void run.ended.then(() => this.runs.delete(run));
    return run;
  }

  async close(): Promise<void> {
    await Promise.all([...this.runs].map((r) => r.stop()));
  }

  /** Runs an API call; an API error becomes a KubeApiError naming the verb, the resource and the rule. */
  async call<T>(what: Pick<ResourceCall, 'verb' | 'group' | 'resource' | 'name'>, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw describeResourceError(this.k8s, err, { ...what, namespace: this.namespace, server: this.access.server, user: this.access.user, grantedBy: GRANTED_BY });
    }
  }

  /** Whether `err` is the API's 404 (the object is gone). */
  isNotFound(err: unknown): boolean {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof this.k8s.ApiException && cause.code === 404;
  }

  private async checkClaim(): Promise<void> {
    const { claimName } = this.settings.sharedVolume;
    const claim = await this.call({ verb: 'get', group: '', resource: 'persistentvolumeclaims', name: claimName },
      () => this.core.readNamespacedPersistentVolumeClaim({ name: claimName, namespace: this.namespace }));
    const modes = claim.spec?.accessModes ?? [];
    if (!modes.includes('ReadWriteMany')) {
      throw new SweepSpecError(this.spec.source, [`executor.kubernetes.sharedVolume.claimName: claim ${this.namespace}/${claimName} has accessModes ` +
        `[${modes.join(', ')}], expected ReadWriteMany: trial pods on different nodes write to it, and a forked trial reads its donor's checkpoint from it`]);
    }
  }

  private async deleteLeftovers(): Promise<void> {
    const jobs = await this.call({ verb: 'list', group: 'batch', resource: 'jobs' },
      () => this.batch.listNamespacedJob({ namespace: this.namespace, labelSelector: `${SWEEP_LABEL}=${this.spec.name}` }));
    await Promise.all(jobs.items.map((job) => this.deleteJob(job.metadata?.name ?? '', 'Foreground')));
    await deleteReleaseObjects(this, `${SWEEP_LABEL}=${this.spec.name}`, 'Foreground');
  }

  /** Deletes a Job and (by propagation) its pods; a Job already gone is fine. */
  async deleteJob(name: string, propagationPolicy: 'Foreground' | 'Background'): Promise<void> {
    try {
      await this.call({ verb: 'delete', group: 'batch', resource: 'jobs', name },
        () => this.batch.deleteNamespacedJob({ name, namespace: this.namespace, propagationPolicy }));
    } catch (err) {
      if (!this.isNotFound(err)) throw err;
    }
  }

  /** The Job, or undefined once it is gone. */
  async readJob(name: string): Promise<V1Job | undefined> {
    try {
      return await this.call({ verb: 'get', group: 'batch', resource: 'jobs', name }, () => this.batch.readNamespacedJob({ name, namespace: this.namespace }));
    } catch (err) {
      if (this.isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** The termination message of the Job's trial container (its last log lines, for a failed pod). */
  async terminationMessage(jobName: string): Promise<string> {
    const statuses = await this.containerStatuses(`${JOB_NAME_LABEL}=${jobName}`);
    const last = statuses.filter((c) => c.name === TRIAL_CONTAINER && c.state?.terminated).at(-1);
    return last ? describeTermination(last.state!.terminated!) : '(no terminated trial container found)';
  }

  async podReady(labelSelector: string): Promise<boolean> {
    const pods = await this.call({ verb: 'list', group: '', resource: 'pods' }, () => this.core.listNamespacedPod({ namespace: this.namespace, labelSelector }));
    return pods.items.some((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  }

  async failedContainer(labelSelector: string): Promise<string | undefined> {
    for (const c of await this.containerStatuses(labelSelector)) {
      const t = [c.state?.terminated, c.lastState?.terminated].find((x) => x !== undefined && x.exitCode !== 0);
      if (t) return `container ${c.name}${c.restartCount ? ` (restarted ${c.restartCount} times)` : ''}: ${describeTermination(t)}`;
    }
    return undefined;
  }

  private async containerStatuses(labelSelector: string): Promise<V1ContainerStatus[]> {
    const pods = await this.call({ verb: 'list', group: '', resource: 'pods' }, () => this.core.listNamespacedPod({ namespace: this.namespace, labelSelector }));
    return pods.items.flatMap((p) => p.status?.containerStatuses ?? []);
  }

  /** Resolves after `ms`. */
  pause(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }
}

/** `exit code N (reason): last lines` of a terminated container; progress-bar lines are left out. */
function describeTermination(t: { exitCode: number; reason?: string; message?: string }): string {
  const lines = (t.message ?? '').split('\n').filter((l) => l.trim() !== '' && !/^\s*(epoch \d|\[|█|░)/.test(l));
  return `exit code ${t.exitCode}${t.reason ? ` (${t.reason})` : ''}: ${lines.slice(-6).join(' | ').slice(-800)}`;
}

/** One trial stretch as a Job: read every poll until it completes or fails, then deleted. */
class KubeTrialRun extends WatchedTrialRun {
  constructor(private readonly executor: KubernetesExecutor, request: TrialRunRequest, readonly jobName: string) {
    super(request);
    this.watchFromNow();
  }

  protected remove(propagation: 'Foreground' | 'Background'): Promise<void> {
    return this.executor.deleteJob(this.jobName, propagation);
  }

  protected async watch(): Promise<void> {
    try {
      for (;;) {
        const job = await this.executor.readJob(this.jobName);
        if (job === undefined) {
          this.result = { succeeded: false, what: `Job ${this.jobName} was deleted`, detail: this.stopping ? 'stopped by the sweep' : 'deleted by someone else' };
          return;
        }
        const done = job.status?.conditions?.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
        if (done !== undefined) {
          const succeeded = done.type === 'Complete';
          const detail = succeeded ? '' : await this.executor.terminationMessage(this.jobName);
          await this.executor.deleteJob(this.jobName, 'Background');
          this.result = { succeeded, what: `Job ${this.jobName} ${succeeded ? 'completed' : `failed (${done.reason ?? 'no reason given'})`}`, detail };
          return;
        }
        await this.executor.pause(this.executor.pollMs);
      }
    } catch (err) {
      // The API refused the executor itself (RBAC, credentials): not the trial's fault; the sweep stops with it.
      this.result = { succeeded: false, what: `Job ${this.jobName}`, detail: (err as Error).message, error: err as Error };
    }
  }
}
