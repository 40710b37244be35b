/**
 * A small tmpfs mounted over a run directory's `checkpoints/` folder, so the checkpoint disk can be filled
 * for real: `fill` writes a filler file until the filesystem says ENOSPC, `free` deletes it. The run's
 * `metrics.jsonl` stays beside it, on the ordinary disk. Needs root; `dispose` unmounts, also after a
 * failure.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import * as path from 'node:path';

const FILLER = '.chaos-filler';

export class CheckpointDisk {
  private mounted = false;

  private constructor(readonly dir: string) {}

  /** Mounts a tmpfs of `sizeMb` at `<runDir>/checkpoints`; throws naming why it could not. */
  static mount(runDir: string, sizeMb: number): CheckpointDisk {
    if (process.getuid?.() !== 0) throw new Error('the full-disk fault needs root (it mounts a tmpfs)');
    const disk = new CheckpointDisk(path.join(runDir, 'checkpoints'));
    mkdirSync(disk.dir, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m`, 'shardwise-chaos', disk.dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      throw new Error(`mount tmpfs on ${disk.dir} failed: ${(err as { stderr?: Buffer }).stderr?.toString().trim() ?? err}`);
    }
    disk.mounted = true;
    return disk;
  }

  /**
   * Fills the filesystem to the last byte; returns how many bytes the filler took. Blocks shrink from 1 MiB
   * to 1 byte: stopping at the first ENOSPC of a 1 MiB block would leave up to 1 MiB free, room enough for a
   * small model's checkpoint, and the fault would not happen.
   */
  fill(): number {
    const fd = openSync(path.join(this.dir, FILLER), 'w');
    let written = 0;
    try {
      for (let size = 1 << 20; size >= 1; size >>= 4) {
        const block = Buffer.alloc(size);
        try {
          for (;;) written += writeSync(fd, block);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
        }
      }
    } finally {
      closeSync(fd);
    }
    return written;
  }

  /** Deletes the filler: checkpoints fit again. */
  free(): void {
    rmSync(path.join(this.dir, FILLER), { force: true });
  }

  /** Unmounts (lazily, in case a process still has a file open there). Never throws. */
  dispose(): void {
    if (!this.mounted) return;
    try {
      execFileSync('umount', ['-l', this.dir], { stdio: 'ignore' });
    } catch {
      // Already unmounted.
    }
    this.mounted = false;
  }
}
