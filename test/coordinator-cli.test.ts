import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { listCheckpoints } from '../coordinator';
import { writeTinyCifar } from './coordinator-fake-worker';
import { withDeadline } from './support/deadline';

const SHARDWISE = path.resolve(__dirname, '../bin/shardwise');
const READY = /^shardwise coordinator ready grpc=(\S+) metrics=(\S+) run=(\S+)$/m;

/** Resolves with the first match of `pattern` in the process's stdout. */
function lineMatching(child: ChildProcess, pattern: RegExp): Promise<RegExpExecArray> {
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = pattern.exec(out);
      if (m) resolve(m);
    });
    child.once('exit', (code) => reject(new Error(`exited (${code}) before printing ${pattern}; stdout:\n${out}`)));
  });
}

describe('shardwise coordinator / scale (CLI)', function () {
  this.timeout(60_000);
  let dir: string;
  let dataDir: string;
  let child: ChildProcess | undefined;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-coordinator-cli-'));
    dataDir = writeTinyCifar(32, 2);
  });
  after(() => {
    if (child?.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints the ready line, takes a scale request, and on SIGTERM checkpoints and exits 0', async () => {
    const job = path.join(dir, 'job.yaml');
    fs.writeFileSync(job, 'name: cli\nmodel: {architecture: small_cnn}\ntraining: {epochs: 1, batchSize: 8}\noptimizer: {learningRate: 0.01}\n');
    child = spawn(SHARDWISE, ['coordinator', '--job', job, '--data', dataDir, '--runs-dir', path.join(dir, 'runs'), '--backend', 'cpu',
      '--set', 'distributed.minWorkers=2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child?.once('exit', (code) => resolve(code)));
    const [, grpc, metricsUrl, runDir] = await withDeadline(lineMatching(child, READY), 30_000, 'the ready line');
    assert.match(grpc, /^127\.0\.0\.1:\d+$/);
    assert.ok(path.isAbsolute(runDir) && runDir.startsWith(path.join(dir, 'runs', 'cli-')), runDir);

    const scaled = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(SHARDWISE, ['scale', '--coordinator', grpc, '--workers', '3'], (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr })));
    assert.equal(scaled.code, 0, scaled.stderr);
    assert.match(scaled.stdout, /desired workers: 3 \(active now: 0\)/);
    const metrics = await (await fetch(metricsUrl)).text();
    assert.match(metrics, /^shardwise_desired_workers 3$/m);
    assert.match(metrics, /^shardwise_waiting_for_workers 1$/m);

    child.kill('SIGTERM');
    assert.equal(await withDeadline(exited, 30_000, 'the coordinator to exit'), 0, stderr);
    assert.match(stderr, /stopped at global step 0; resume with --run-dir /);
    assert.equal((await listCheckpoints(path.join(runDir, 'checkpoints'))).length, 1, 'a checkpoint to resume from');
  });
});
