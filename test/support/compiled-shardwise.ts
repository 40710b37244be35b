/**
 * The `shardwise` command the tests start their coordinators, workers and clusters with: the compiled
 * JavaScript the images run (`scripts/build.sh`), built once per test run. A process started from it is
 * ready in about half the time of one under tsx (measured: 1.3 s against 2.4 s to a worker's first
 * register attempt), on a machine where a test starts three or four of them at once.
 *
 * The build goes where `dist/` would (`.test-build-*` at the checkout's root, git-ignored), so the compiled
 * files find `node_modules`, and what they locate beside the checkout (`../shared`), as `dist/` does. It is
 * removed when the test process exits. Tests of `bin/shardwise` itself (the tsx
 * path a user types) spawn that script by name and do not come here.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ShardwiseCommand } from '../../launcher';

const ROOT = path.resolve(__dirname, '..', '..');

let built: string | undefined;

/** The folder holding the compiled build (`cli/index.js`, `launcher/index.js`, ...), built on first use. */
export function compiledDist(): string {
  if (built !== undefined) return built;
  const dist = fs.mkdtempSync(path.join(ROOT, '.test-build-'));
  process.on('exit', () => fs.rmSync(dist, { recursive: true, force: true }));
  const build = spawnSync('bash', [path.join(ROOT, 'scripts', 'build.sh'), dist], { cwd: ROOT, encoding: 'utf8', timeout: 170_000 });
  if (build.status !== 0) throw new Error(`scripts/build.sh failed (${build.status ?? build.signal}):\n${build.stdout}${build.stderr}`);
  built = dist;
  return dist;
}

/** `node <build>/cli/index.js`: what the tests' child processes run. */
export function compiledShardwise(): ShardwiseCommand {
  return { command: process.execPath, args: [path.join(compiledDist(), 'cli', 'index.js')] };
}
