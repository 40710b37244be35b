/**
 * A multi-worker trial on Kubernetes is the chart itself, rendered as its own release: `helm template
 * <sweep>-<trial>` with the trial's job spec, its worker count, the sweep's labels (commonLabels) and its run
 * directory on the sweep's shared volume (coordinator.runDir plus an extra volume mount). Rendering the chart,
 * rather than building coordinator and worker objects here, keeps one description of a distributed job: the
 * trial's objects are exactly what `helm install` would create, with trial-specific names from the release.
 * Left out of the render: what a trial does not need or the sweep Role may not create (NetworkPolicies, the
 * PodDisruptionBudget, PVCs, RBAC) and `helm test` hooks.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { SweepSpecError } from './errors';
import type { TrialRunRequest } from './executor';
import { SWEEP_LABEL, TRIAL_LABEL } from './kube-trial-job';
import type { KubernetesExecutorSpec } from './spec-schema';

/** A rendered object, as the API takes it. */
export interface TrialObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** The kinds a trial release is made of, in creation order (what its pods reference comes first). */
export const TRIAL_RELEASE_KINDS = ['ServiceAccount', 'ConfigMap', 'Service', 'StatefulSet', 'Deployment'] as const;

/** The release name of a multi-worker trial: `<sweep>-<trial>`. */
export function trialReleaseName(sweepName: string, trialId: string): string {
  return `${sweepName}-${trialId}`;
}

/** The chart folder and the helm command: the repository's own (scripts/helm.sh) when present, else `helm`. */
function chartAndHelm(settings: KubernetesExecutorSpec): { chart: string; helm: string } {
  const roots = [path.resolve(__dirname, '..'), path.resolve(__dirname, '..', '..')];
  const root = roots.find((r) => fs.existsSync(path.join(r, 'helm', 'shardwise', 'Chart.yaml')));
  const chart = settings.chart ?? (root ? path.join(root, 'helm', 'shardwise') : 'helm/shardwise');
  const script = root ? path.join(root, 'scripts', 'helm.sh') : undefined;
  return { chart, helm: script && fs.existsSync(script) ? script : 'helm' };
}

/** `repo/name:tag` -> its repository and tag (a registry port's colon is not the tag's). */
function splitImage(image: string): { repository: string; tag: string } {
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  return colon > slash ? { repository: image.slice(0, colon), tag: image.slice(colon + 1) } : { repository: image, tag: '' };
}

/** Renders the release of a multi-worker trial: the objects to create, in creation order. */
export async function renderTrialRelease(settings: KubernetesExecutorSpec, sweepName: string, namespace: string, request: TrialRunRequest): Promise<TrialObject[]> {
  const { chart, helm } = chartAndHelm(settings);
  const shared = settings.sharedVolume;
  const values = {
    image: splitImage(settings.image),
    commonLabels: { [SWEEP_LABEL]: sweepName, [TRIAL_LABEL]: request.trialId },
    job: parseYaml(fs.readFileSync(request.jobFile, 'utf8')) as unknown,
    workers: { replicas: request.workers, pdb: { enabled: false } },
    networkPolicy: { enabled: false },
    coordinator: {
      runDir: request.runsDir,
      persistence: { enabled: false },
      extraArgs: request.dataDir ? [`--data=${request.dataDir}`] : [],
      extraVolumes: [
        { name: 'sweep', persistentVolumeClaim: { claimName: shared.claimName } },
        ...(settings.dataset ? [{ name: 'sweep-dataset', persistentVolumeClaim: { claimName: settings.dataset.claimName, readOnly: true } }] : []),
      ],
      extraVolumeMounts: [
        { name: 'sweep', mountPath: shared.mountPath },
        ...(settings.dataset ? [{ name: 'sweep-dataset', mountPath: settings.dataset.mountPath, readOnly: true }] : []),
      ],
      extraEnv: Object.entries(settings.env).map(([name, value]) => ({ name, value })),
    },
    ...(request.backend ? { backend: request.backend } : {}),
  };
  const args = ['template', trialReleaseName(sweepName, request.trialId), chart, '--namespace', namespace, '--values', '-'];
  let stdout: string;
  try {
    stdout = await new Promise<string>((resolve, reject) => {
      const child = execFile(helm, args, { maxBuffer: 16 * 1024 * 1024 }, (err, out, errText) => (err ? reject(new Error(errText.trim() || err.message)) : resolve(out)));
      child.stdin!.end(JSON.stringify(values));
    });
  } catch (err) {
    throw new SweepSpecError(`trial ${request.trialId}`, [`helm template ${chart} (with ${helm}) failed: ${(err as Error).message}`], { cause: err });
  }
  const objects = parseAllDocuments(stdout).map((d) => d.toJS() as TrialObject | null)
    .filter((o): o is TrialObject => o !== null && typeof o === 'object' && typeof o.kind === 'string');
  const wanted = objects.filter((o) => !o.metadata.annotations?.['helm.sh/hook'] && (TRIAL_RELEASE_KINDS as readonly string[]).includes(o.kind));
  const order = (o: TrialObject): number => (TRIAL_RELEASE_KINDS as readonly string[]).indexOf(o.kind);
  return wanted.sort((a, b) => order(a) - order(b)).map((o) => ({ ...o, metadata: { ...o.metadata, namespace } }));
}

