/**
 * A Job controller and kubelet for the fake API server: each new batch/v1 Job gets one pod (an object the
 * API serves, labelled `batch.kubernetes.io/job-name`) and a real local process running the container's
 * args after the `shardwise` command, as the image's entrypoint would. When the process exits the pod's
 * status gets the container's termination (with `FallbackToLogsOnError`, its last log lines as the
 * message) and the Job a Complete or Failed condition (backoffLimit 0: no retry). Deleting a Job stops its
 * pod (SIGTERM, SIGKILL after terminationGracePeriodSeconds); a Foreground delete removes the Job only once
 * the pod is gone.
 *
 * Volumes: a persistentVolumeClaim volume is the local folder `volumes[claim]`, mounted at that same
 * folder, the claim existing and ReadWriteMany (pod-volumes.ts); other paths are run as they are.
 */
import { randomBytes } from 'node:crypto';
import type { ManagedChild } from '../../../launcher';
import type { KubeStore, ObjectKey, StoredObject } from './kube-store';
import { claimProblems, type PodVolume, type VolumeMount } from './pod-volumes';
import type { PodEvent } from './statefulset-controller';

interface Container { name: string; command?: string[]; args?: string[]; env?: Array<{ name: string; value?: string }>;
  terminationMessagePolicy?: string; volumeMounts?: VolumeMount[] }
interface PodSpec { restartPolicy?: string; terminationGracePeriodSeconds?: number; containers: Container[];
  volumes?: PodVolume[] }
interface JobSpec { backoffLimit?: number; template: { metadata?: { labels?: Record<string, string> }; spec: PodSpec } }

/** How the controller runs pods. */
export interface JobControllerOptions {
  store: KubeStore;
  namespace: string;
  /** Claim name -> the local folder standing in for its volume. */
  volumes: Record<string, string>;
  /** Starts a pod's process: the image's `shardwise` entrypoint with the container's args and env. */
  spawn: (podName: string, args: string[], env: Record<string, string>) => ManagedChild;
}

/** Bytes of log a FallbackToLogsOnError termination message keeps (Kubernetes: 2048 bytes or 80 lines). */
const TERMINATION_MESSAGE_BYTES = 2048;

/** Runs each Job's single pod as a local process. */
export class FakeJobController {
  /** Pod lifecycle events, in order. */
  readonly events: PodEvent[] = [];
  /** Problems the fake kubelet found in a pod spec (a test asserts there are none). */
  readonly problems: string[] = [];
  private readonly running = new Map<string, { pod: string; child: ManagedChild }>();

  constructor(private readonly options: JobControllerOptions) {
    options.store.onChange((key, obj, previous) => {
      if (key.resource !== 'jobs' || key.namespace !== options.namespace) return;
      if (!previous) this.run(key, obj);
      else if (obj.metadata.deletionTimestamp && !previous.metadata.deletionTimestamp) void this.terminate(key, true);
    });
    options.store.onDelete((key) => {
      if (key.resource === 'jobs' && key.namespace === options.namespace) void this.terminate(key, false);
    });
  }

  /** Names of the pods whose process runs now. */
  podNames(): string[] {
    return [...this.running.values()].map((r) => r.pod);
  }

  /** The process id of pod `name` (a test kills it to crash the pod). */
  pidOf(name: string): number {
    const pid = [...this.running.values()].find((r) => r.pod === name)?.child.pid;
    if (pid === undefined) throw new Error(`no running pod ${name}; running: ${this.podNames().join(', ')}`);
    return pid;
  }

  /** Stops every pod. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.running.values()].map((r) => r.child.stop({ graceMs: 5_000 })));
  }

  private podKey(name: string): ObjectKey {
    return { apiGroup: '', resource: 'pods', namespace: this.options.namespace, name };
  }

  private run(key: ObjectKey, job: StoredObject): void {
    const spec = job.spec as JobSpec;
    const podSpec = spec.template.spec;
    const container = podSpec.containers[0];
    const problems = this.check(key.name, spec);
    if (problems.length > 0) {
      this.problems.push(...problems);
      return; // a real pod with these problems would never start: it stays Pending
    }
    const pod = `${key.name}-${randomBytes(3).toString('hex').slice(0, 5)}`;
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? '']));
    const child = this.options.spawn(pod, container.args ?? [], env);
    this.running.set(key.name, { pod, child });
    this.events.push({ pod, event: 'started' });
    this.options.store.put({ apiGroup: '', resource: 'pods', namespace: key.namespace }, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: pod, namespace: key.namespace,
        labels: { ...spec.template.metadata?.labels, 'batch.kubernetes.io/job-name': key.name, 'job-name': key.name },
        ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: key.name, uid: job.metadata.uid, controller: true }],
      },
      spec: podSpec,
      status: { phase: 'Running' },
    });
    this.options.store.update(key, (o) => ({ ...o, status: { active: 1, startTime: new Date().toISOString() } }));
    void child.exited.then((exit) => {
      if (this.running.get(key.name)?.child !== child) return; // terminated by a delete
      this.running.delete(key.name);
      const code = exit.code ?? 128 + (exit.signal === 'SIGKILL' ? 9 : 15);
      const output = child.tail(80);
      this.events.push({ pod, event: 'exited', exit, output });
      const message = code !== 0 && container.terminationMessagePolicy === 'FallbackToLogsOnError'
        ? Buffer.from(output).subarray(-TERMINATION_MESSAGE_BYTES).toString() : undefined;
      try {
        this.options.store.update(this.podKey(pod), (o) => ({ ...o, status: {
          phase: code === 0 ? 'Succeeded' : 'Failed',
          containerStatuses: [{ name: container.name, ready: false, restartCount: 0, image: '', imageID: '',
            state: { terminated: { exitCode: code, reason: code === 0 ? 'Completed' : 'Error', ...(message ? { message } : {}) } } }],
        } }));
        const now = new Date().toISOString();
        this.options.store.update(key, (o) => ({ ...o, status: code === 0
          ? { succeeded: 1, completionTime: now, conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: now }] }
          : { failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit', lastTransitionTime: now }] } }));
      } catch {
        // The Job or its pod was deleted while the process ended: nothing left to report on.
      }
    });
  }

  /** What a real cluster would refuse or never schedule. */
  private check(job: string, spec: JobSpec): string[] {
    const problems: string[] = [];
    const podSpec = spec.template.spec;
    if (podSpec.containers.length !== 1) problems.push(`${job}: expected one container, got ${podSpec.containers.length}`);
    const container = podSpec.containers[0];
    if (container.command !== undefined) problems.push(`${job}: container command ${JSON.stringify(container.command)} replaces the image's shardwise entrypoint`);
    problems.push(...claimProblems({ store: this.options.store, namespace: this.options.namespace, claims: this.options.volumes, owner: job },
      podSpec.volumes ?? [], container.volumeMounts ?? []));
    return problems;
  }

  private async terminate(key: ObjectKey, finalize: boolean): Promise<void> {
    const run = this.running.get(key.name);
    this.running.delete(key.name);
    if (run) {
      const grace = ((this.options.store.list({ apiGroup: '', resource: 'pods', namespace: key.namespace })
        .find((p) => p.metadata.name === run.pod)?.spec as PodSpec | undefined)?.terminationGracePeriodSeconds ?? 30) * 1000;
      this.events.push({ pod: run.pod, event: 'terminating' });
      const exit = await run.child.stop({ graceMs: grace });
      this.events.push({ pod: run.pod, event: 'exited', exit, output: run.child.tail(80) });
    }
    for (const pod of this.options.store.list({ apiGroup: '', resource: 'pods', namespace: key.namespace })) {
      if ((pod.metadata.labels as Record<string, string> | undefined)?.['batch.kubernetes.io/job-name'] === key.name) this.options.store.delete(this.podKey(pod.metadata.name));
    }
    if (finalize) this.options.store.delete(key);
  }
}
