import * as fs from 'node:fs';
import * as path from 'node:path';
import { SweepLockedError } from './errors';

/** The lock file inside a sweep folder. */
export const SWEEP_LOCK_FILE = 'sweep.lock';

/**
 * One sweep process per sweep folder. The lock is a file created exclusively (O_EXCL) holding the owner's
 * pid. A lock whose process is gone (the sweep was SIGKILLed) is stale and taken over; a live owner
 * makes this throw `SweepLockedError` naming the lock file and the pid.
 */
export class SweepLock {
  private constructor(readonly file: string) {}

  /** Takes the lock of sweep folder `dir`. */
  static acquire(dir: string): SweepLock {
    const file = path.join(dir, SWEEP_LOCK_FILE);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
        return new SweepLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) throw new SweepLockedError(file, pid);
      fs.rmSync(file, { force: true }); // stale: its owner died without releasing it
    }
    throw new SweepLockedError(file, Number(fs.readFileSync(file, 'utf8').trim()));
  }

  /** Releases the lock if this process still holds it. */
  release(): void {
    try {
      if (Number(fs.readFileSync(this.file, 'utf8').trim()) === process.pid) fs.rmSync(this.file);
    } catch {
      // already gone
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
