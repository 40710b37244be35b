/**
 * `bench/bundle.sh`: the copy of the CLI and bench/scaling.ts measured on machines without npm (docs/step-path-
 * latency.md, "On 16 cores") must run with no node_modules in reach. Built into a temporary folder outside the
 * checkout, where Node finds only the bundle's own, it runs a real 2-worker cluster of the tiny job to the end:
 * the coordinator and workers it spawns from the bundle, the wasm backend, the status page's assets, the retry
 * policy (an ES module loaded at run time) and the curves (a native addon). A package that the bundle misses
 * fails here, not on the lent machine.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { tinyJobYaml } from './support/tiny-job';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');

describe('bench/bundle.sh', function () {
  this.timeout(240_000);
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'shardwise-bundle-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('builds a CLI that runs a 2-worker cluster with no node_modules in reach', async () => {
    const bundle = path.join(dir, 'bundle');
    await run('bash', [path.join(ROOT, 'bench', 'bundle.sh'), bundle], { cwd: ROOT, timeout: 120_000 });
    assert.ok(!bundle.startsWith(ROOT), `expected the temporary folder outside the checkout, got ${bundle}`);

    const job = path.join(dir, 'job.yaml');
    writeFileSync(job, tinyJobYaml('bundled', dir));
    const cluster = await run(process.execPath, [path.join(bundle, 'cli', 'index.js'), 'cluster', '--job', job, '--workers', '2', '--no-bus'],
      { cwd: dir, timeout: 150_000, maxBuffer: 16 * 1024 * 1024 });
    const output = `${cluster.stdout}${cluster.stderr}`;
    assert.match(output, /\[cluster\] after epoch 1: validation top-1/, output.slice(-2000));

    const [runDir, ...others] = readdirSync(path.join(dir, 'runs'));
    assert.equal(others.length, 0, `expected one run directory, found ${[runDir, ...others].join(', ')}`);
    for (const file of ['summary.json', 'metrics.jsonl', 'loss-per-epoch.png']) {
      assert.ok(existsSync(path.join(dir, 'runs', runDir, file)), `expected ${file} in the run directory ${runDir}`);
    }
  });

  it('refuses to replace a folder that is not an earlier bundle, and leaves it as it was', async () => {
    const keep = path.join(dir, 'keep.txt');
    writeFileSync(keep, 'not a bundle');
    await assert.rejects(run('bash', [path.join(ROOT, 'bench', 'bundle.sh'), dir], { cwd: ROOT }), (err: Error & { stderr: string }) => {
      assert.match(err.stderr, /exists and is not an earlier bundle/);
      return true;
    });
    assert.equal(readFileSync(keep, 'utf8'), 'not a bundle');
  });
});
