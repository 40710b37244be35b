/**
 * A real helm v3 for the chart tests (scripts/helm.sh takes it from a devDependency), with its config and
 * cache homes in a throwaway folder, and `helm template` output parsed into objects.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CHART = path.join(ROOT, 'helm', 'shardwise');
const HELM = path.join(ROOT, 'scripts', 'helm.sh');

/** The ci/ scenarios, by name (`ci/<name>-values.yaml`), as the folder holds them. */
export function ciScenarios(): string[] {
  return fs.readdirSync(path.join(CHART, 'ci')).filter((f) => f.endsWith('-values.yaml')).map((f) => f.slice(0, -'-values.yaml'.length)).sort();
}

/** The values file of a ci/ scenario. */
export function scenarioFile(name: string): string {
  return path.join(CHART, 'ci', `${name}-values.yaml`);
}

/** A helm binary with private homes; `dispose()` removes them. */
export class Helm {
  private constructor(private readonly homes: string) {}

  static create(): Helm {
    return new Helm(fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-helm-')));
  }

  run(args: string[]): { status: number; stdout: string; stderr: string } {
    const env = {
      ...process.env,
      HELM_CONFIG_HOME: path.join(this.homes, 'config'),
      HELM_CACHE_HOME: path.join(this.homes, 'cache'),
      HELM_DATA_HOME: path.join(this.homes, 'data'),
    };
    const run = spawnSync(HELM, args, { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
    if (run.error) throw run.error;
    return { status: run.status ?? -1, stdout: run.stdout, stderr: run.stderr };
  }

  /** `helm template <release> <chart> -f ... --set ...`, parsed; fails the test on a render error. */
  template(release: string, files: readonly string[], sets: readonly string[] = [], chart = CHART): unknown[] {
    const args = ['template', release, chart, ...files.flatMap((f) => ['-f', f]), ...sets.flatMap((s) => ['--set', s])];
    const run = this.run(args);
    assert.equal(run.status, 0, `helm ${args.join(' ')} failed:\n${run.stderr}`);
    const objects: unknown[] = [];
    for (const doc of parseAllDocuments(run.stdout)) {
      assert.deepEqual(doc.errors, [], 'helm rendered invalid YAML');
      const value = doc.toJS() as unknown;
      if (value !== null) objects.push(value);
    }
    return objects;
  }

  dispose(): void {
    fs.rmSync(this.homes, { recursive: true, force: true });
  }
}
