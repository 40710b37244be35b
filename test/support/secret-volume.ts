import * as fs from 'node:fs';
import * as path from 'node:path';

/** Every file under `dir`, as paths relative to it. */
function filesUnder(dir: string, prefix = ''): string[] {
  return fs.readdirSync(path.join(dir, prefix), { withFileTypes: true }).flatMap((entry) => {
    const rel = path.join(prefix, entry.name);
    return entry.isDirectory() ? filesUnder(dir, rel) : [rel];
  });
}

/**
 * A folder laid out as the kubelet lays out a mounted Secret: each file is a symlink through `..data`, a
 * symlink to a versioned folder, and an update swaps `..data` in one rename, so a reader sees the old set or
 * the new one, never a mix. Tests rotate certificates with it as a cluster would.
 */
export class SecretVolume {
  private version = 0;

  /** Mounts a copy of `source` at `dir` (created). */
  constructor(readonly dir: string, source: string) {
    fs.mkdirSync(dir, { recursive: true });
    const data = this.stage(source);
    fs.symlinkSync(data, path.join(dir, '..data'));
    for (const rel of filesUnder(source)) {
      const link = path.join(dir, rel);
      fs.mkdirSync(path.dirname(link), { recursive: true });
      fs.symlinkSync(path.relative(path.dirname(link), path.join(dir, '..data', rel)), link);
    }
  }

  /** Replaces the whole content with a copy of `source` (same file names) in one atomic swap. */
  update(source: string): void {
    const tmp = path.join(this.dir, '..data_tmp');
    fs.symlinkSync(this.stage(source), tmp);
    fs.renameSync(tmp, path.join(this.dir, '..data'));
  }

  /** Copies `source` into a new versioned folder; returns its name (relative, as the kubelet links it). */
  private stage(source: string): string {
    const name = `..v${++this.version}`;
    fs.cpSync(source, path.join(this.dir, name), { recursive: true });
    return name;
  }
}
