import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  checkCoordinatorHeap, coordinatorHeapCapMb, coordinatorHeapFloorMb, coordinatorLiveHeapMb, explicitOldSpaceMb, HeapLimitError, withCoordinatorHeapCap,
} from '../launcher';

// The coordinator's old-generation cap (launcher/coordinator-heap.ts): the rule, how the launcher passes it
// on, and a real `shardwise coordinator` refusing a cap too small for its job before it starts anything.

const SHARDWISE = resolve(__dirname, '../bin/shardwise');

describe('coordinator heap: the rule', () => {
  it('gives twice the live old generation, at least 128 MiB, and refuses below 1.25x of it', () => {
    assert.equal(coordinatorLiveHeapMb(64), 96);
    assert.equal(coordinatorHeapCapMb(64), 192);
    assert.equal(coordinatorHeapFloorMb(64), 120);
    assert.equal(coordinatorHeapCapMb(1), 162);
    assert.equal(coordinatorHeapCapMb(512), 416);
    for (const workers of [1, 16, 64, 256]) {
      assert.ok(coordinatorHeapFloorMb(workers) < coordinatorHeapCapMb(workers), `the default cap passes its own check (${workers} workers)`);
    }
  });

  it('reads the cap from node flags and NODE_OPTIONS, the later one winning, in either spelling', () => {
    assert.equal(explicitOldSpaceMb([], undefined), undefined);
    assert.equal(explicitOldSpaceMb(['--import', 'tsx'], '--enable-source-maps'), undefined);
    assert.equal(explicitOldSpaceMb([], '--max-old-space-size=300'), 300);
    assert.equal(explicitOldSpaceMb(['--max_old_space_size=250'], '--max-old-space-size=300'), 250);
  });

  it('adds the cap to NODE_OPTIONS, keeping what is there, and never overrides a cap the user set', () => {
    assert.equal(withCoordinatorHeapCap({}, 192).NODE_OPTIONS, '--max-old-space-size=192');
    assert.equal(withCoordinatorHeapCap({ NODE_OPTIONS: '--enable-source-maps' }, 192).NODE_OPTIONS, '--enable-source-maps --max-old-space-size=192');
    const mine = { NODE_OPTIONS: '--max-old-space-size=512', PATH: '/bin' };
    assert.equal(withCoordinatorHeapCap(mine, 192), mine);
  });

  it('accepts the rule\'s cap and more, says when there is none, and names both numbers when it is too small', () => {
    assert.match(checkCoordinatorHeap(64, 192), /capped at 192 MiB \(the rule gives 192 MiB for up to 64 workers\)/);
    assert.match(checkCoordinatorHeap(64, 120), /capped at 120 MiB/);
    assert.match(checkCoordinatorHeap(64, undefined), /no --max-old-space-size.*NODE_OPTIONS=--max-old-space-size=192/);
    assert.throws(() => checkCoordinatorHeap(64, 119), (err: unknown) => err instanceof HeapLimitError && err.capMb === 119 && err.floorMb === 120 &&
      /--max-old-space-size=119 is below the 120 MiB a job of up to 64 workers needs.*use --max-old-space-size=192/.test(err.message));
  });
});

describe('coordinator heap: shardwise coordinator', function () {
  this.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'shardwise-heap-'));
  const job = join(dir, 'job.yaml');
  writeFileSync(job, `model: {architecture: small_cnn}\ntraining: {epochs: 1, batchSize: 8}\noptimizer: {learningRate: 0.01}\n` +
    `distributed: {maxWorkers: 64}\noutput: {runsDir: ${JSON.stringify(join(dir, 'runs'))}}\n`);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a NODE_OPTIONS cap below the job\'s floor with exit status 2, before it serves anything', async () => {
    const outcome = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
      execFile(SHARDWISE, ['coordinator', '--job', job, '--backend', 'cpu'], { env: { ...process.env, NODE_OPTIONS: '--max-old-space-size=100', SHARDWISE_DEBUG: '' } },
        (err, stdout, stderr) => done({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr }));
    });
    assert.equal(outcome.code, 2, `expected exit status 2, got ${outcome.code}; stderr:\n${outcome.stderr}`);
    assert.match(outcome.stderr, /shardwise: the coordinator's old-generation cap --max-old-space-size=100 is below the 120 MiB a job of up to 64 workers needs/);
    assert.doesNotMatch(outcome.stdout, /shardwise coordinator ready/);
  });
});
