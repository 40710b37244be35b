import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { emptyState, readSweepState, SWEEP_LOCK_FILE, SWEEP_STATE_FILE, SweepLock, SweepLockedError, SweepStateError, writeSweepState } from '../sweep';

describe('sweep state and lock', () => {
  it('replaces the state file by rename, leaving no temporary file; a damaged file is a clear error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sweep-state-'));
    assert.equal(readSweepState(dir), undefined);
    const state = emptyState('s', 'abc');
    writeSweepState(dir, state);
    state.stopReason = 'x';
    writeSweepState(dir, state);
    assert.deepEqual(readSweepState(dir), state);
    assert.deepEqual(readdirSync(dir), [SWEEP_STATE_FILE]);
    writeFileSync(join(dir, SWEEP_STATE_FILE), '{"version": 1, "tri');
    assert.throws(() => readSweepState(dir), (err) => err instanceof SweepStateError && /not valid JSON/.test(err.message));
  });

  it('after a SIGKILL while the state file is being written, the last complete state is read back whole', async function () {
    this.timeout(60_000);
    const dir = mkdtempSync(join(tmpdir(), 'sweep-state-kill-'));
    const writer = resolve(__dirname, 'support', 'sweep-state-writer.ts');
    let lastSeen = 0;
    let killedMidWrite = 0;
    // Kill the writer the moment it creates its temporary file (a write in progress), until two kills left one behind.
    for (let attempt = 0; attempt < 10 && killedMidWrite < 2; attempt++) {
      const child = spawn(process.execPath, ['--import', 'tsx', writer, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise((r) => child.on('exit', r));
      await new Promise<void>((r) => child.stdout!.once('data', () => r()));
      const watcher = watch(dir);
      await new Promise<void>((r) => watcher.on('change', (_event, file) => {
        if (String(file).endsWith('.tmp')) r();
      }));
      child.kill('SIGKILL');
      watcher.close();
      await exited;
      const temps = readdirSync(dir).filter((f) => f.endsWith('.tmp'));
      if (temps.length > 0) killedMidWrite++;
      const state = readSweepState(dir)!;
      assert.equal(state.trials.length, 6000, 'every trial of a complete state');
      const n = Number(state.stopReason);
      // Each writer completed a write before its kill, numbered after every earlier writer's.
      assert.ok(n > lastSeen, `write ${n} read back after write ${lastSeen}`);
      lastSeen = n;
    }
    assert.equal(killedMidWrite, 2, 'two kills landed while a write was in progress');
  });

  it('refuses a second holder while the first lives, naming the lock file and pid; takes over a dead holder\'s lock', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sweep-lock-'));
    const lock = SweepLock.acquire(dir);
    assert.throws(() => SweepLock.acquire(dir), (err) => err instanceof SweepLockedError && err.pid === process.pid &&
      err.message.includes(join(dir, SWEEP_LOCK_FILE)));
    lock.release();
    // A holder killed with SIGKILL leaves its lock behind; its pid is no longer alive.
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    writeFileSync(join(dir, SWEEP_LOCK_FILE), `${child.pid}\n`);
    assert.throws(() => SweepLock.acquire(dir), SweepLockedError);
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await exited;
    SweepLock.acquire(dir).release();
  });
});
