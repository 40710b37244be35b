import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exitCodeOf, ManagedChild } from '../launcher';
import { testJobYaml, writeSignalCifar } from './support/cluster-data';
import { compiledDist } from './support/compiled-shardwise';

// The compiled JavaScript the images run (`npm run build`: tsconfig.build.json -> dist/), run without tsx:
// the CLI starts, and `shardwise cluster` runs a real job end to end from it (nats-server, the coordinator
// and a worker process all started from the compiled files), so the build carries everything the code
// loads at run time (proto/generated, package.json) and the launcher starts compiled children.

describe('build: the compiled output runs without tsx', function () {
  this.timeout(240_000);
  let dir: string;
  let dist: string;

  before(function () {
    this.timeout(180_000);
    // The build script itself, into a throwaway folder (dist/ of the checkout stays as it is); the other
    // tests start their processes from the same build.
    dist = compiledDist();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'build-test-'));
  });

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('emits the CLI, the generated gRPC code and no test or bench files', () => {
    for (const file of ['cli/index.js', 'proto/generated/shardwise.js', 'launcher/index.js', 'package.json']) {
      assert.ok(fs.existsSync(path.join(dist, file)), `dist/${file} is missing`);
    }
    assert.ok(!fs.existsSync(path.join(dist, 'test')) && !fs.existsSync(path.join(dist, 'bench')), 'tests and benchmarks stay out of the image');
  });

  it('node dist/cli/index.js --help lists the commands, with no tsx loaded', () => {
    const run = spawnSync(process.execPath, [path.join(dist, 'cli', 'index.js'), '--help'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
    assert.equal(run.status, 0, run.stderr);
    for (const command of ['train', 'coordinator', 'worker', 'scale', 'cluster']) assert.match(run.stdout, new RegExp(`^  ${command} `, 'm'));
  });

  it('shardwise cluster from dist/ trains a small job to the end with a compiled coordinator and worker', async () => {
    const data = path.join(dir, 'cifar');
    fs.mkdirSync(data);
    writeSignalCifar(data, 96, 3);
    const job = path.join(dir, 'job.yaml');
    fs.writeFileSync(job, testJobYaml('compiled', { minWorkers: 1, desiredWorkers: 1 }));
    const child = ManagedChild.spawn({
      name: 'compiled-cluster',
      command: process.execPath,
      args: [path.join(dist, 'cli', 'index.js'), 'cluster', '--job', job, '--workers', '1', '--data', data,
        '--runs-dir', path.join(dir, 'runs'), '--set', 'training.epochs=2', '--backend', 'wasm'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    const status = await child.exited;
    assert.equal(exitCodeOf(status), 0, `compiled cluster run failed:\n${child.tail(60)}`);
    // Its children were the compiled entry point too, not cli/index.ts under tsx.
    const launcher = path.join(dist, 'launcher', 'index.js');
    const probe = spawnSync(process.execPath, ['-p', `JSON.stringify(require(${JSON.stringify(launcher)}).defaultShardwiseCommand())`], { encoding: 'utf8' });
    const command = JSON.parse(probe.stdout) as { command: string; args: string[] };
    assert.deepEqual(command, { command: process.execPath, args: [path.join(dist, 'cli', 'index.js')] }, probe.stderr);
    const [run] = fs.readdirSync(path.join(dir, 'runs'));
    const records = fs.readFileSync(path.join(dir, 'runs', run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; exactlyOnce?: boolean });
    assert.ok(records.some((r) => r.type === 'epoch-report' && r.exactlyOnce === true), 'every epoch counts every sample exactly once');
  });
});
