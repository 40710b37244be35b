/**
 * The chart as a cluster would receive it: `scripts/helm.sh template` (a real helm binary), parsed into
 * objects, so the fake API server authorizes against the Role the chart actually renders.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';

const REPO = path.resolve(__dirname, '../../..');

/** A rendered Kubernetes object, loosely typed: tests read the fields they need. */
export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** Renders helm/shardwise as release `release` in `namespace` with `--set` values; returns every object. */
export async function renderChart(release: string, namespace: string, set: readonly string[] = []): Promise<RenderedObject[]> {
  const args = ['template', release, path.join(REPO, 'helm/shardwise'), '--namespace', namespace, ...set.flatMap((s) => ['--set', s])];
  const { stdout } = await promisify(execFile)(path.join(REPO, 'scripts/helm.sh'), args, { cwd: REPO, maxBuffer: 16 * 1024 * 1024 });
  return parseAllDocuments(stdout)
    .map((doc) => doc.toJS() as RenderedObject | null)
    .filter((obj): obj is RenderedObject => obj !== null && typeof obj === 'object' && 'kind' in obj);
}

/** The one object of `kind` in `objects`; fails naming what was rendered otherwise. */
export function onlyOf(objects: readonly RenderedObject[], kind: string): RenderedObject {
  const found = objects.filter((o) => o.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind} in the render, found ${found.length}: ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found[0];
}
