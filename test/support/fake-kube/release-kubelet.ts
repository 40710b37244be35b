/**
 * A Deployment and StatefulSet controller and kubelet for the fake API server, for a chart release's pods
 * (a sweep's multi-worker trial): each new Deployment gets `replicas` pods (`<name>-<random>`), each new
 * StatefulSet `<name>-0` ... `<name>-(replicas-1)`, every pod an object the API serves, labelled as its
 * template, and a real local process: the image's entrypoint (the shardwise CLI, or `nats-server` for the
 * NATS image) with the container's args and env translated to this machine (pod-network.ts: local ports for
 * containerPorts and Services, 127.0.0.1 for the pod IP; pod-volumes.ts: local folders for mounts).
 *
 * A pod with an httpGet readinessProbe turns Ready once the probe answers 200 (probed until it does); one
 * without turns Ready when started. A container that exits is reported terminated (exit code, Completed or
 * Error, its last log lines with FallbackToLogsOnError) and not restarted: a real kubelet would restart it
 * with that termination as lastState, which a watcher sees either way. Deleting the owner stops its pods
 * (SIGTERM, SIGKILL after terminationGracePeriodSeconds); a Foreground delete removes the owner only once
 * its pods are gone. Resizing a live owner is not modelled (the chart's StatefulSet controller is, in
 * statefulset-controller.ts).
 */
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import type { ManagedChild } from '../../../launcher';
import type { KubeStore, ObjectKey, StoredObject } from './kube-store';
import { type FakeContainer, FakePodNetwork, FAKE_POD_IP, translateContainer } from './pod-network';
import { localMounts, type PodVolume } from './pod-volumes';
import type { PodEvent } from './statefulset-controller';

interface PodTemplate {
  metadata?: { labels?: Record<string, string> };
  spec: { containers: FakeContainer[]; initContainers?: unknown[]; volumes?: PodVolume[]; terminationGracePeriodSeconds?: number };
}

/** How the kubelet runs pods. */
export interface ReleaseKubeletOptions {
  store: KubeStore;
  namespace: string;
  /** Claim name -> the local folder standing in for its volume. */
  claims: Record<string, string>;
  /** Under it each pod gets a folder for its configMap and emptyDir volumes. */
  scratchDir: string;
  /** Starts a pod's process: the entrypoint of `image` with `args`, `env` added to this process's. */
  spawn: (pod: string, image: string, args: string[], env: Record<string, string>) => ManagedChild;
}

/** Readiness probe period of the fake (the chart's are seconds; the fake need not wait that long). */
const PROBE_PERIOD_MS = 200;
/** Bytes of log a FallbackToLogsOnError termination message keeps (Kubernetes: 2048 bytes or 80 lines). */
const TERMINATION_MESSAGE_BYTES = 2048;
const OWNERS = new Set(['deployments', 'statefulsets']);

interface RunningPod { name: string; owner: string; child: ManagedChild; graceMs: number }

/** Runs the pods of Deployments and StatefulSets as local processes. */
export class FakeReleaseKubelet {
  /** Pod lifecycle events, in order. */
  readonly events: PodEvent[] = [];
  /** What a real cluster would refuse, or the fake cannot run (a test asserts there is none). */
  readonly problems: string[] = [];
  readonly network: FakePodNetwork;
  private readonly running = new Map<string, RunningPod>();
  /** Service ports and pod starts, in the order the API stored their objects. */
  private queue: Promise<void> = Promise.resolve();
  /** Pods being stopped after their owner's delete. */
  private readonly removals = new Set<Promise<void>>();

  constructor(private readonly options: ReleaseKubeletOptions) {
    this.network = new FakePodNetwork(options.namespace);
    options.store.onChange((key, obj, previous) => {
      if (key.namespace !== options.namespace) return;
      if (key.resource === 'services' && !previous) this.enqueue(() => this.network.addService(obj));
      if (!OWNERS.has(key.resource)) return;
      if (!previous) this.enqueue(() => this.startPods(key, obj));
      else if (obj.metadata.deletionTimestamp && !previous.metadata.deletionTimestamp) this.remove(key, true);
    });
    options.store.onDelete((key) => {
      if (key.namespace !== options.namespace) return;
      if (key.resource === 'services') this.network.removeService(key.name);
      if (OWNERS.has(key.resource)) this.remove(key, false);
    });
  }

  /** Names of the pods whose process runs now. */
  podNames(): string[] {
    return [...this.running.keys()];
  }

  /** The process id of pod `name` (a test kills it to crash the pod). */
  pidOf(name: string): number {
    const pid = this.running.get(name)?.child.pid;
    if (pid === undefined) throw new Error(`no running pod ${name}; running: ${this.podNames().join(', ')}`);
    return pid;
  }

  /**
   * Resolves once every pod start and stop asked for so far is done: a background delete returns before its
   * pods are gone, as in a real cluster, so a test waits here before it asserts nothing is left.
   */
  async idle(): Promise<void> {
    await this.queue;
    while (this.removals.size > 0) await Promise.all(this.removals);
  }

  /** Stops every pod. */
  async stopAll(): Promise<void> {
    await this.queue;
    await Promise.all([...this.running.values()].map((r) => r.child.stop({ graceMs: 5_000 })));
  }

  /** Stops the owner's pods once its pending starts are done; `finalize`: then deletes the owner (Foreground). */
  private remove(key: ObjectKey, finalize: boolean): void {
    const removal: Promise<void> = this.queue.then(() => this.removePods(key, finalize)).catch((err: unknown) => {
      this.problems.push(`the fake kubelet failed to stop the pods of ${ownerId(key)}: ${(err as Error).stack ?? err}`);
    }).finally(() => this.removals.delete(removal));
    this.removals.add(removal);
  }

  private enqueue(step: () => Promise<void>): void {
    this.queue = this.queue.then(step).catch((err: unknown) => {
      this.problems.push(`the fake kubelet failed: ${(err as Error).stack ?? err}`);
    });
  }

  private async startPods(key: ObjectKey, owner: StoredObject): Promise<void> {
    const spec = owner.spec as { replicas?: number; template: PodTemplate };
    const replicas = spec.replicas ?? 1;
    for (let i = 0; i < replicas; i++) {
      const pod = key.resource === 'statefulsets' ? `${key.name}-${i}` : `${key.name}-${randomBytes(3).toString('hex').slice(0, 5)}`;
      await this.startPod(pod, key, owner, spec.template);
    }
  }

  private async startPod(pod: string, key: ObjectKey, owner: StoredObject, template: PodTemplate): Promise<void> {
    const labels = template.metadata?.labels ?? {};
    const problems: string[] = [];
    if (template.spec.containers.length !== 1) problems.push(`${pod}: the fake runs one container per pod, got ${template.spec.containers.length}`);
    if (template.spec.initContainers?.length) problems.push(`${pod}: the fake runs no init containers`);
    const container = template.spec.containers[0];
    if (container.command !== undefined) problems.push(`${pod}: container command ${JSON.stringify(container.command)} replaces the image's entrypoint`);
    const volumeContext = { store: this.options.store, namespace: key.namespace, claims: this.options.claims, owner: pod };
    const mounts = localMounts(volumeContext, path.join(this.options.scratchDir, pod), template.spec.volumes ?? [], container.volumeMounts ?? []);
    const ports = await this.network.podPorts(pod, labels, container);
    const run = translateContainer(container, { pod, namespace: key.namespace, network: this.network, ports: ports.ports, mounts: mounts.mounts });
    problems.push(...mounts.problems, ...ports.problems, ...run.problems);
    if (problems.length > 0) {
      this.problems.push(...problems);
      return; // a real pod with these problems would never start: it stays Pending
    }
    const child = this.options.spawn(pod, container.image, run.args, run.env);
    const graceMs = (template.spec.terminationGracePeriodSeconds ?? 30) * 1000;
    this.running.set(pod, { name: pod, owner: ownerId(key), child, graceMs });
    this.events.push({ pod, event: 'started' });
    const kind = key.resource === 'statefulsets' ? 'StatefulSet' : 'Deployment';
    this.options.store.put(podAt(key.namespace), {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: pod, namespace: key.namespace, labels, ownerReferences: [{ apiVersion: 'apps/v1', kind, name: key.name, uid: owner.metadata.uid, controller: true }] },
      spec: template.spec,
      status: podStatus(container, { running: { startedAt: new Date().toISOString() } }, false),
    });
    const probe = container.readinessProbe?.httpGet;
    void this.waitReady(pod, child, probe && { port: ports.ports.get(probe.port), path: probe.path ?? '/' }).then((ready) => {
      if (ready) this.setStatus(pod, podStatus(container, { running: { startedAt: new Date().toISOString() } }, true));
    });
    void child.exited.then((exit) => {
      if (this.running.get(pod)?.child !== child) return; // stopped by a delete
      this.running.delete(pod);
      this.network.releasePod(pod);
      const code = exit.code ?? 128 + (exit.signal ? osConstants.signals[exit.signal] : 0);
      const output = child.tail(80);
      this.events.push({ pod, event: 'exited', exit, output });
      const message = code !== 0 && container.terminationMessagePolicy === 'FallbackToLogsOnError'
        ? Buffer.from(output).subarray(-TERMINATION_MESSAGE_BYTES).toString() : undefined;
      this.setStatus(pod, podStatus(container, { terminated: { exitCode: code, reason: code === 0 ? 'Completed' : 'Error', ...(message ? { message } : {}) } }, false));
    });
  }

  /** Resolves true once the probe answers 200 (at once without a probe), false if the process ends first. */
  private async waitReady(pod: string, child: ManagedChild, probe: { port: number | undefined; path: string } | undefined): Promise<boolean> {
    if (probe?.port === undefined) return probe === undefined;
    while (this.running.get(pod)?.child === child) {
      if (await httpOk(probe.port, probe.path)) return this.running.get(pod)?.child === child;
      await new Promise((resolve) => setTimeout(resolve, PROBE_PERIOD_MS));
    }
    return false;
  }

  private setStatus(pod: string, status: object): void {
    try {
      this.options.store.update({ ...podAt(this.options.namespace), name: pod }, (o) => ({ ...o, status }));
    } catch {
      // The pod was deleted meanwhile: nothing left to report on.
    }
  }

  private async removePods(key: ObjectKey, finalize: boolean): Promise<void> {
    const owned = [...this.running.values()].filter((r) => r.owner === ownerId(key));
    for (const r of owned) this.running.delete(r.name);
    await Promise.all(owned.map(async (r) => {
      this.events.push({ pod: r.name, event: 'terminating' });
      const exit = await r.child.stop({ graceMs: r.graceMs });
      this.network.releasePod(r.name);
      this.events.push({ pod: r.name, event: 'exited', exit, output: r.child.tail(80) });
    }));
    for (const pod of this.options.store.list(podAt(key.namespace))) {
      const refs = (pod.metadata.ownerReferences as Array<{ kind: string; name: string }> | undefined) ?? [];
      if (refs.some((ref) => ref.name === key.name && `${ref.kind.toLowerCase()}s` === key.resource)) this.options.store.delete({ ...podAt(key.namespace), name: pod.metadata.name });
    }
    if (finalize) this.options.store.delete(key);
  }
}

function ownerId(key: ObjectKey): string {
  return `${key.resource}/${key.name}`;
}

function podAt(namespace: string): Omit<ObjectKey, 'name'> {
  return { apiGroup: '', resource: 'pods', namespace };
}

function podStatus(container: FakeContainer, state: object, ready: boolean): object {
  const terminated = 'terminated' in state ? (state.terminated as { exitCode: number }) : undefined;
  return {
    phase: terminated ? (terminated.exitCode === 0 ? 'Succeeded' : 'Failed') : 'Running',
    podIP: FAKE_POD_IP,
    conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
    containerStatuses: [{ name: container.name, ready, restartCount: 0, image: container.image, imageID: '', state }],
  };
}

/** Whether GET http://127.0.0.1:port/path answers 200 within a second. */
function httpOk(port: number, urlPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: FAKE_POD_IP, port, path: urlPath, timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}
