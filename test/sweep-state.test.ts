import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
