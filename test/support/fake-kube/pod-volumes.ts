/**
 * A fake kubelet's volumes: what a pod's volumes are on this machine. A persistentVolumeClaim is a local
 * folder the test names; the fake cannot remap paths under a claim, so the container must mount it at that
 * same folder, and the claim must exist and be ReadWriteMany (every pod counts as on its own node). A
 * configMap volume is a folder holding the ConfigMap's keys as files, an emptyDir an empty folder, both
 * under the pod's scratch folder; a process sees them through its translated paths (pod-network.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { KubeStore, StoredObject } from './kube-store';

/** The fields of a pod's volumes and mounts the fake reads. */
export interface PodVolume {
  name: string;
  persistentVolumeClaim?: { claimName: string };
  configMap?: { name: string };
  emptyDir?: object;
  [other: string]: unknown;
}
export interface VolumeMount { name: string; mountPath: string; subPath?: string; readOnly?: boolean }

/** A mount as the process sees it: the container's path and the local folder standing in for it. */
export interface LocalMount {
  mountPath: string;
  local: string;
}

/** Where the claims are and whom problems are reported for. */
export interface VolumeContext {
  store: KubeStore;
  namespace: string;
  /** Claim name -> the local folder standing in for its volume. */
  claims: Record<string, string>;
  /** The pod or Job, in problem messages. */
  owner: string;
}

/** What a real cluster would refuse or never schedule about the pod's claims, or the fake cannot run. */
export function claimProblems(ctx: VolumeContext, volumes: readonly PodVolume[], mounts: readonly VolumeMount[]): string[] {
  const problems: string[] = [];
  for (const volume of volumes) {
    const claim = volume.persistentVolumeClaim?.claimName;
    if (claim === undefined) continue;
    const folder = ctx.claims[claim];
    let stored: StoredObject | undefined;
    try {
      stored = ctx.store.get({ apiGroup: '', resource: 'persistentvolumeclaims', namespace: ctx.namespace, name: claim });
    } catch {
      problems.push(`${ctx.owner}: persistentvolumeclaim "${claim}" not found`);
      continue;
    }
    const modes = (stored.spec as { accessModes?: string[] }).accessModes ?? [];
    if (!modes.includes('ReadWriteMany')) problems.push(`${ctx.owner}: claim ${claim} is [${modes.join(', ')}]; pods on several nodes need ReadWriteMany`);
    const mount = mounts.find((m) => m.name === volume.name);
    if (folder === undefined || mount?.mountPath !== folder) {
      problems.push(`${ctx.owner}: claim ${claim} is the local folder ${folder}, mounted at ${mount?.mountPath}: the fake runs pods with paths as they are`);
    }
  }
  return problems;
}

/**
 * Makes the local folders of a pod's mounts under `scratch` (configMaps written out) and returns them, the
 * longest mount path first, so a path is translated by the deepest mount holding it. Problems: claims
 * (see {@link claimProblems}), and kinds of volume or mount the fake does not model.
 */
export function localMounts(ctx: VolumeContext, scratch: string, volumes: readonly PodVolume[], mounts: readonly VolumeMount[]): { mounts: LocalMount[]; problems: string[] } {
  const problems = claimProblems(ctx, volumes, mounts);
  const out: LocalMount[] = [];
  for (const mount of mounts) {
    const volume = volumes.find((v) => v.name === mount.name);
    if (volume === undefined) {
      problems.push(`${ctx.owner}: volumeMount ${mount.name} names no volume`);
      continue;
    }
    if (mount.subPath !== undefined) problems.push(`${ctx.owner}: mount ${mount.name} has a subPath, which the fake does not model`);
    if (volume.persistentVolumeClaim) {
      out.push({ mountPath: mount.mountPath, local: mount.mountPath });
    } else if (volume.configMap) {
      const local = path.join(scratch, mount.name);
      fs.mkdirSync(local, { recursive: true });
      let map: StoredObject;
      try {
        map = ctx.store.get({ apiGroup: '', resource: 'configmaps', namespace: ctx.namespace, name: volume.configMap.name });
      } catch {
        problems.push(`${ctx.owner}: configmap "${volume.configMap.name}" not found`);
        continue;
      }
      for (const [key, text] of Object.entries((map.data as Record<string, string> | undefined) ?? {})) fs.writeFileSync(path.join(local, key), text);
      out.push({ mountPath: mount.mountPath, local });
    } else if (volume.emptyDir) {
      const local = path.join(scratch, mount.name);
      fs.mkdirSync(local, { recursive: true });
      out.push({ mountPath: mount.mountPath, local });
    } else {
      problems.push(`${ctx.owner}: volume ${volume.name} is of a kind the fake does not model (${Object.keys(volume).filter((k) => k !== 'name').join(', ')})`);
    }
  }
  return { mounts: out.sort((a, b) => b.mountPath.length - a.mountPath.length), problems };
}

/** `p` as the process sees it: under the deepest mount holding it, its local folder; else unchanged. */
export function localPath(mounts: readonly LocalMount[], p: string): string {
  const mount = mounts.find((m) => p === m.mountPath || p.startsWith(`${m.mountPath}/`));
  return mount ? mount.local + p.slice(mount.mountPath.length) : p;
}
