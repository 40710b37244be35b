/**
 * The fake cluster's network, for pods run as local processes: every pod's IP is 127.0.0.1, so pods that
 * declare the same containerPort (the chart's coordinator and workers both use 50061) each get a free
 * local port for it. A ClusterIP Service gets a local port per service port when it is created (its
 * "cluster IP"), and the pod it selects listens on that port for the targeted containerPort: so a client
 * started before the pod behind the Service still knows where to dial, as with a real cluster IP. A
 * headless Service gets no port: its pods are reached at the addresses they advertise.
 *
 * {@link translateContainer} turns a container's args and env into what the process runs with: `$(VAR)`
 * expanded from its env (fieldRefs: the pod's name, namespace and IP), `0.0.0.0` bound as 127.0.0.1, a
 * `--...port=N` flag naming a containerPort as its local port, a `service:port` address (any DNS form, with
 * a scheme or not) as 127.0.0.1 and the Service's local port, and paths under a mount as the local folder.
 */
import { getFreePort } from '../free-port';
import type { StoredObject } from './kube-store';
import { type LocalMount, localPath } from './pod-volumes';

/** The pod IP of every fake pod. */
export const FAKE_POD_IP = '127.0.0.1';

/** The fields of a container the fake reads. */
export interface FakeContainer {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string }; [other: string]: unknown } }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  readinessProbe?: { httpGet?: { path?: string; port: number | string } };
  terminationMessagePolicy?: string;
  volumeMounts?: Array<{ name: string; mountPath: string; subPath?: string }>;
}

interface ServicePort { port: number; targetPort?: number | string; local: number }
interface Service { selector: Record<string, string>; ports: ServicePort[]; heldBy?: string }

/** Local ports of ClusterIP Services, and the ports of each pod. */
export class FakePodNetwork {
  private readonly services = new Map<string, Service>();

  constructor(private readonly namespace: string) {}

  /** Gives each port of a ClusterIP Service its local port; a headless Service gets none. */
  async addService(obj: StoredObject): Promise<void> {
    const spec = obj.spec as { clusterIP?: string; selector?: Record<string, string>; ports?: Array<{ port: number; targetPort?: number | string }> };
    if (spec.clusterIP === 'None') return;
    const ports: ServicePort[] = [];
    for (const p of spec.ports ?? []) ports.push({ port: p.port, targetPort: p.targetPort, local: await getFreePort(FAKE_POD_IP) });
    this.services.set(obj.metadata.name, { selector: spec.selector ?? {}, ports });
  }

  /** Forgets a deleted Service. */
  removeService(name: string): void {
    this.services.delete(name);
  }

  /**
   * The local port of each containerPort of pod `pod` (labelled `labels`), keyed by its name and its number:
   * the port of the ClusterIP Service that selects the pod and targets it, else a free port. Problems: a
   * Service port already held by another pod (the fake gives one pod per Service).
   */
  async podPorts(pod: string, labels: Record<string, string>, container: FakeContainer): Promise<{ ports: Map<string | number, number>; problems: string[] }> {
    const ports = new Map<string | number, number>();
    const problems: string[] = [];
    const selecting = [...this.services.entries()].filter(([, s]) => Object.keys(s.selector).length > 0 &&
      Object.entries(s.selector).every(([k, v]) => labels[k] === v));
    for (const cp of container.ports ?? []) {
      const match = selecting.flatMap(([name, s]) => s.ports.filter((p) => (p.targetPort ?? p.port) === cp.name || (p.targetPort ?? p.port) === cp.containerPort)
        .map((p) => ({ name, s, p })))[0];
      if (match && match.s.heldBy !== undefined && match.s.heldBy !== pod) {
        problems.push(`${pod}: Service ${match.name} already sends to pod ${match.s.heldBy}; the fake gives a ClusterIP Service one pod`);
      }
      if (match) match.s.heldBy = pod;
      const local = match?.p.local ?? (await getFreePort(FAKE_POD_IP));
      ports.set(cp.containerPort, local);
      if (cp.name) ports.set(cp.name, local);
    }
    return { ports, problems };
  }

  /** Releases the Service ports pod `pod` held (its replacement may take them). */
  releasePod(pod: string): void {
    for (const s of this.services.values()) if (s.heldBy === pod) s.heldBy = undefined;
  }

  /** The local port of `host:port` when `host` names a ClusterIP Service of this namespace. */
  resolve(host: string, port: number): number | undefined {
    const suffixes = ['', `.${this.namespace}`, `.${this.namespace}.svc`, `.${this.namespace}.svc.cluster.local`];
    for (const [name, s] of this.services) {
      if (suffixes.some((suffix) => host === name + suffix)) return s.ports.find((p) => p.port === port)?.local;
    }
    return undefined;
  }
}

/** What a pod's process runs with. */
export interface PodProcessContext {
  pod: string;
  namespace: string;
  network: FakePodNetwork;
  ports: Map<string | number, number>;
  mounts: readonly LocalMount[];
}

/** The container's args and env as the local process takes them; problems: env sources the fake lacks. */
export function translateContainer(container: FakeContainer, ctx: PodProcessContext): { args: string[]; env: Record<string, string>; problems: string[] } {
  const problems: string[] = [];
  const env: Record<string, string> = {};
  const fields: Record<string, string> = { 'metadata.name': ctx.pod, 'metadata.namespace': ctx.namespace, 'status.podIP': FAKE_POD_IP };
  for (const e of container.env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath;
    if (e.valueFrom && (field === undefined || !(field in fields))) {
      problems.push(`${ctx.pod}: env ${e.name} comes from ${JSON.stringify(e.valueFrom)}, which the fake does not model`);
      continue;
    }
    env[e.name] = field !== undefined ? fields[field] : translateValue(expand(e.value ?? '', env), false, ctx);
  }
  const args = (container.args ?? []).map((arg) => {
    const flag = /^(--?[\w-]+=)(.*)$/s.exec(expand(arg, env));
    return flag ? flag[1] + translateValue(flag[2], /port/i.test(flag[1]), ctx) : translateValue(expand(arg, env), false, ctx);
  });
  return { args, env, problems };
}

/** Kubernetes' `$(VAR)` expansion from the container's env (an unknown name stays as written). */
function expand(text: string, env: Record<string, string>): string {
  return text.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env[name] ?? whole);
}

function translateValue(value: string, isPort: boolean, ctx: PodProcessContext): string {
  if (value === '0.0.0.0') return FAKE_POD_IP;
  if (isPort && /^\d+$/.test(value)) return String(ctx.ports.get(Number(value)) ?? value);
  const address = /^([a-z][a-z0-9+.-]*:\/\/)?([a-z0-9.-]+):(\d+)$/.exec(value);
  if (address) {
    const local = ctx.network.resolve(address[2], Number(address[3]));
    if (local !== undefined) return `${address[1] ?? ''}${FAKE_POD_IP}:${local}`;
  }
  return value.startsWith('/') ? localPath(ctx.mounts, value) : value;
}
