import { createHash } from 'node:crypto';
import { type Dirent, promises as fs } from 'node:fs';
import * as path from 'node:path';
import {
  CHECKPOINT_FORMAT_VERSION,
  type Checkpoint,
  type CheckpointState,
  MANIFEST_FILE,
  type NamedTensor,
  STATE_FILE,
  TENSORS_FILE,
  checkpointFolderName,
  littleEndianBytes,
  readCheckpoint,
  stateProblems,
  tensorManifest,
} from './checkpoint-format';
import { CheckpointError, CorruptCheckpointError } from './errors';

const FOLDER_PATTERN = /^step-(\d+)$/;

/** What {@link latestCheckpoint} found. */
export interface LatestCheckpoint {
  /** The newest checkpoint that verified, if any. */
  checkpoint?: Checkpoint;
  /** Newer checkpoints that were corrupt or partial, newest first, each naming the bad file. */
  skipped: CorruptCheckpointError[];
}

/** Options of {@link CheckpointStore}. */
export interface CheckpointStoreOptions {
  /** Complete checkpoints kept; older ones are deleted after each successful write. @default 3 */
  keep?: number;
}

async function writeSynced(file: string, data: Buffer | string): Promise<void> {
  const handle = await fs.open(file, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Checkpoint folders under `dir`, newest (highest global step) first; unverified. */
export async function listCheckpoints(dir: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new CheckpointError(dir, 'cannot list checkpoints', { cause: err });
  }
  return entries
    .filter((e) => e.isDirectory() && FOLDER_PATTERN.test(e.name))
    .map((e) => ({ name: e.name, step: Number(FOLDER_PATTERN.exec(e.name)![1]) }))
    .sort((a, b) => b.step - a.step)
    .map((e) => path.join(dir, e.name));
}

/**
 * The newest checkpoint under `dir` that verifies. Corrupt or partial ones on the way are skipped and
 * returned in `skipped` (each a CorruptCheckpointError naming its folder and file) for the caller to log.
 * A missing `dir` is an empty store, not an error: a fresh job starts from scratch.
 */
export async function latestCheckpoint(dir: string): Promise<LatestCheckpoint> {
  const skipped: CorruptCheckpointError[] = [];
  for (const folder of await listCheckpoints(dir)) {
    try {
      return { checkpoint: await readCheckpoint(folder), skipped };
    } catch (err) {
      if (!(err instanceof CorruptCheckpointError)) throw err;
      skipped.push(err);
    }
  }
  return { skipped };
}

/**
 * Writes checkpoints atomically: each is assembled in a temporary folder beside its final place, every
 * file and the folder are fsynced, and only then is it renamed into place. A crash at any point leaves
 * either the old set or the old set plus a complete new one (and perhaps a stray temporary folder that
 * the next write clears). After a write, all but the newest `keep` checkpoints are deleted, and so are
 * checkpoints of later steps than the one written (an abandoned timeline, see `prune`). One writer per
 * folder: two coordinators sharing `dir` are not supported.
 */
export class CheckpointStore {
  readonly dir: string;
  readonly keep: number;
  private writes = 0;

  constructor(dir: string, options: CheckpointStoreOptions = {}) {
    const keep = options.keep ?? 3;
    if (!Number.isInteger(keep) || keep < 1) throw new CheckpointError(dir, `expected keep >= 1, got ${keep}`);
    this.dir = dir;
    this.keep = keep;
  }

  /** {@link latestCheckpoint} of this store's folder. */
  latest(): Promise<LatestCheckpoint> {
    return latestCheckpoint(this.dir);
  }

  /** {@link listCheckpoints} of this store's folder. */
  list(): Promise<string[]> {
    return listCheckpoints(this.dir);
  }

  /**
   * Writes a checkpoint named after `state.globalStep` (replacing one of the same step, e.g. a corrupt
   * one that a resume skipped) and prunes old ones. Returns the checkpoint folder.
   * @throws CheckpointError for bad input (naming the field) or an I/O failure.
   */
  async write(state: CheckpointState, tensors: readonly NamedTensor[]): Promise<string> {
    const problems = stateProblems(state as unknown as Record<string, unknown>);
    if (problems.length > 0) throw new CheckpointError(this.dir, `invalid state: ${problems.join('; ')}`);
    const manifest = tensorManifest(this.dir, tensors);
    const name = checkpointFolderName(state.globalStep);
    const final = path.join(this.dir, name);
    const tag = `${name}-${process.pid}-${this.writes++}`;
    const temp = path.join(this.dir, `.tmp-${tag}`);
    const old = path.join(this.dir, `.old-${tag}`);
    try {
      await fs.mkdir(this.dir, { recursive: true });
      await this.clearStrays();
      await fs.mkdir(temp);
      const hash = createHash('sha256');
      const handle = await fs.open(path.join(temp, TENSORS_FILE), 'w');
      try {
        for (const t of tensors) {
          const bytes = littleEndianBytes(t.values);
          hash.update(bytes);
          await handle.write(bytes);
        }
        await handle.sync();
      } finally {
        await handle.close();
      }
      manifest.sha256 = hash.digest('hex');
      await writeSynced(path.join(temp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 1)}\n`);
      const stateJson = { formatVersion: CHECKPOINT_FORMAT_VERSION, ...state };
      await writeSynced(path.join(temp, STATE_FILE), `${JSON.stringify(stateJson, null, 1)}\n`);
      await syncDir(temp);
      const replacing = await fs.stat(final).then(
        () => true,
        () => false,
      );
      // rename() cannot replace a non-empty folder: move the old one aside first, drop it after.
      if (replacing) await fs.rename(final, old);
      await fs.rename(temp, final);
      await syncDir(this.dir);
      if (replacing) await fs.rm(old, { recursive: true, force: true });
    } catch (err) {
      await fs.rm(temp, { recursive: true, force: true }).catch(() => undefined);
      if (err instanceof CheckpointError) throw err;
      throw new CheckpointError(final, 'write failed', { cause: err });
    }
    await this.prune(state.globalStep);
    return final;
  }

  /** Leftovers of a write that crashed before its rename (or after it, before dropping the old copy). */
  private async clearStrays(): Promise<void> {
    for (const entry of await fs.readdir(this.dir)) {
      if (entry.startsWith('.tmp-step-') || entry.startsWith('.old-step-')) {
        await fs.rm(path.join(this.dir, entry), { recursive: true, force: true });
      }
    }
  }

  /**
   * Keeps the newest `keep` checkpoints up to `writtenStep`. Folders of later steps belong to a timeline
   * abandoned by a resume from an older checkpoint (the newer ones were corrupt); left in place they
   * would outrank the checkpoint just written, and `keep` could delete it.
   */
  private async prune(writtenStep: number): Promise<void> {
    const folders = await listCheckpoints(this.dir);
    const written = checkpointFolderName(writtenStep);
    const at = folders.findIndex((f) => path.basename(f) === written);
    const doomed = [...folders.slice(0, Math.max(at, 0)), ...folders.slice(Math.max(at, 0) + this.keep)];
    for (const folder of doomed) await fs.rm(folder, { recursive: true, force: true });
  }
}
