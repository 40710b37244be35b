/**
 * A StatefulSet controller for the fake API server: on a change of spec.replicas it starts or stops real
 * local processes, one per ordinal (`<name>-0`, `<name>-1`, ...), as the kubelet would run pods. Scale-down
 * removes the highest ordinal first: SIGTERM, then SIGKILL once the pod's terminationGracePeriodSeconds is
 * over. With podManagementPolicy OrderedReady it waits for each pod to be gone before the next; with
 * Parallel (the chart's default) it terminates them all at once, highest ordinal signalled first.
 * status.replicas follows the pods that exist.
 */
import type { ExitStatus, ManagedChild } from '../../../launcher';
import type { KubeStore, ObjectKey, StoredObject } from './kube-store';

/** A running pod: the process standing in for it. */
export interface FakePod {
  name: string;
  ordinal: number;
  child: ManagedChild;
}

/** What happened to a pod, in order (tests assert the order of removals). */
export interface PodEvent {
  pod: string;
  event: 'started' | 'terminating' | 'exited';
  exit?: ExitStatus;
  /** On `exited`: the pod's last output lines (what `kubectl logs --previous` would show). */
  output?: string;
}

/** How the controller runs pods. */
export interface StatefulSetControllerOptions {
  store: KubeStore;
  namespace: string;
  /** The StatefulSet's name; its pods are `<name>-<ordinal>`. */
  name: string;
  /** Starts the process of pod `podName` and resolves once it is ready. */
  startPod: (podName: string) => Promise<ManagedChild>;
  /** Pod spec terminationGracePeriodSeconds, in ms. */
  terminationGraceMs: number;
  /** spec.podManagementPolicy. @default 'OrderedReady' (Kubernetes' default) */
  podManagementPolicy?: 'OrderedReady' | 'Parallel';
}

/** Reconciles one StatefulSet's pods to its spec.replicas, one change at a time, in order. */
export class FakeStatefulSetController {
  /** Pod lifecycle events, in order. */
  readonly events: PodEvent[] = [];
  private readonly pods = new Map<number, FakePod>();
  private queue: Promise<void> = Promise.resolve();
  private readonly key: ObjectKey;
  private failure: Error | undefined;

  constructor(private readonly options: StatefulSetControllerOptions) {
    this.key = { apiGroup: 'apps', resource: 'statefulsets', namespace: options.namespace, name: options.name };
    options.store.onChange((key, obj, previous) => {
      if (key.resource !== 'statefulsets' || key.namespace !== options.namespace || key.name !== options.name) return;
      const wanted = replicasOf(obj);
      if (previous && replicasOf(previous) === wanted) return;
      this.queue = this.queue.then(() => this.reconcile(wanted)).catch((err: unknown) => {
        this.failure ??= err as Error;
      });
    });
  }

  /** Names of the pods running now, by ordinal. */
  podNames(): string[] {
    return [...this.pods.keys()].sort((a, b) => a - b).map((o) => this.pods.get(o)!.name);
  }

  /** The process id of pod `name` (a test holds it with SIGSTOP). */
  pidOf(name: string): number {
    const pod = [...this.pods.values()].find((p) => p.name === name);
    if (!pod?.child.pid) throw new Error(`no running pod ${name}; running: ${this.podNames().join(', ')}`);
    return pod.child.pid;
  }

  /** Resolves once every change seen so far is carried out; rejects with the first failure. */
  async settled(): Promise<void> {
    await this.queue;
    if (this.failure) throw this.failure;
  }

  /** Stops every pod (SIGTERM, SIGKILL after the grace period). */
  async stopAll(): Promise<void> {
    await this.queue;
    for (const ordinal of [...this.pods.keys()].sort((a, b) => b - a)) await this.remove(ordinal);
  }

  private async reconcile(wanted: number): Promise<void> {
    // Read again: a later change may already be stored; the queue applies each in turn.
    const target = Math.max(0, wanted);
    const starts: Array<Promise<void>> = [];
    for (let ordinal = 0; ordinal < target; ordinal++) {
      if (!this.pods.has(ordinal)) starts.push(this.add(ordinal));
    }
    await Promise.all(starts);
    const excess = [...this.pods.keys()].filter((o) => o >= target).sort((a, b) => b - a);
    if (this.options.podManagementPolicy === 'Parallel') {
      await Promise.all(excess.map((ordinal) => this.remove(ordinal)));
    } else {
      for (const ordinal of excess) await this.remove(ordinal);
    }
  }

  private async add(ordinal: number): Promise<void> {
    const name = `${this.options.name}-${ordinal}`;
    const child = await this.options.startPod(name);
    this.pods.set(ordinal, { name, ordinal, child });
    this.events.push({ pod: name, event: 'started' });
    this.writeStatus();
    void child.exited.then((exit) => {
      // A pod that exits on its own (a crash, or its job ended) is gone; a real controller would recreate it.
      if (this.pods.get(ordinal)?.child === child) {
        this.pods.delete(ordinal);
        this.events.push({ pod: name, event: 'exited', exit, output: child.tail(200) });
        this.writeStatus();
      }
    });
  }

  private async remove(ordinal: number): Promise<void> {
    const pod = this.pods.get(ordinal);
    if (!pod) return;
    this.events.push({ pod: pod.name, event: 'terminating' });
    const exit = await pod.child.stop({ graceMs: this.options.terminationGraceMs });
    this.pods.delete(ordinal);
    this.events.push({ pod: pod.name, event: 'exited', exit, output: pod.child.tail(200) });
    this.writeStatus();
  }

  private writeStatus(): void {
    this.options.store.update(this.key, (obj) => ({ ...obj, status: { replicas: this.pods.size, readyReplicas: this.pods.size } }));
  }
}

function replicasOf(obj: StoredObject): number {
  return (obj.spec as { replicas?: number } | undefined)?.replicas ?? 1;
}
