import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES } from './cifar10-reader';
import { createProgressReporter, type ProgressMode } from './download-progress';
import { ChecksumError, DatasetError, DownloadError } from './errors';

/** The official CIFAR-10 binary archive. */
export const CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz';
/** MD5 of {@link CIFAR10_URL} as published on the dataset page. */
export const CIFAR10_MD5 = 'c32a1d4ab5d03f1284b67883e8d87530';
/** Top-level folder inside the archive; also the folder name in the cache. */
export const CIFAR10_ARCHIVE_DIR = 'cifar-10-batches-bin';

const MAX_REDIRECTS = 5;
/** Abort when the connection delivers nothing for this long. @default 60 s */
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/** Options of {@link downloadCifar10}. */
export interface DownloadCifar10Options {
  /** Folder that receives `cifar-10-batches-bin/`. @default {@link defaultCifar10CacheDir} */
  cacheDir?: string;
  /** Archive URL (http or https); tests point it at a loopback server. @default CIFAR10_URL */
  url?: string;
  /** Expected MD5 of the archive, lower-case hex. @default CIFAR10_MD5 */
  md5?: string;
  /** @default 'auto' (bar on a terminal, a line every ~10% otherwise) */
  progress?: ProgressMode;
  /** Receives progress and status lines. @default a line on stderr */
  log?: (line: string) => void;
  /** Give up when no bytes arrive for this long. @default 60000 */
  idleTimeoutMs?: number;
}

/** Options of {@link resolveCifar10Dir}. */
export interface ResolveCifar10Options extends DownloadCifar10Options {
  /** Explicit folder with data_batch_*.bin; wins over everything else. */
  dir?: string;
  /** Download into the cache when nothing local is found. @default true */
  download?: boolean;
  /** Environment read for CIFAR10_DIR and SHARDWISE_CACHE_DIR. @default process.env */
  env?: NodeJS.ProcessEnv;
}

/**
 * Where the downloaded dataset is cached: `$SHARDWISE_CACHE_DIR/cifar10` when that variable is set
 * (the shardwise cache root), else `~/.cache/shardwise/cifar10`.
 */
export function defaultCifar10CacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const root = env.SHARDWISE_CACHE_DIR || path.join(os.homedir(), '.cache', 'shardwise');
  return path.join(root, 'cifar10');
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Finds the CIFAR-10 folder: `dir`, else `$CIFAR10_DIR`, else the cache if already extracted, else
 * downloads into the cache (unless `download: false`). A named folder that does not exist is an error,
 * not a reason to fall through: the user asked for that copy.
 */
export async function resolveCifar10Dir(options: ResolveCifar10Options = {}): Promise<string> {
  const env = options.env ?? process.env;
  const named: Array<[string | undefined, string]> = [
    [options.dir, 'data.dir'],
    [env.CIFAR10_DIR || undefined, 'CIFAR10_DIR'],
  ];
  for (const [dir, source] of named) {
    if (dir === undefined) continue;
    if (!(await isDir(dir))) {
      throw new DatasetError(dir, `${source} is ${dir}, which is not a folder; expected a folder with data_batch_*.bin`);
    }
    return dir;
  }
  const cacheDir = options.cacheDir ?? defaultCifar10CacheDir(env);
  const cached = path.join(cacheDir, CIFAR10_ARCHIVE_DIR);
  if (await isDir(cached)) return cached;
  if (options.download === false) {
    throw new DatasetError(
      cached,
      `CIFAR-10 not found: no data.dir, CIFAR10_DIR is unset and ${cached} does not exist, and downloading is ` +
        'off. Point data.dir or CIFAR10_DIR at a local copy (a folder with data_batch_1.bin ... data_batch_5.bin, ' +
        'e.g. ../shared/data/cifar10-subset), or allow the download.',
    );
  }
  try {
    return await downloadCifar10({ ...options, cacheDir });
  } catch (err) {
    if (!(err instanceof DownloadError) || err instanceof ChecksumError) throw err;
    // Say how to avoid the download, not only why it failed (an offline machine is the common case).
    throw new DownloadError(err.url, `${err.message}; to use a local copy instead, set CIFAR10_DIR or data.dir (or pass --data DIR)`,
      { cause: err, status: err.status });
  }
}

/**
 * Downloads, verifies and extracts the archive into `<cacheDir>/cifar-10-batches-bin` and returns that
 * path. Nothing appears there unless the whole archive arrived with the right MD5: it is streamed to a
 * temporary file, extracted into a temporary folder, and only then renamed into place.
 */
export async function downloadCifar10(options: DownloadCifar10Options = {}): Promise<string> {
  const url = options.url ?? CIFAR10_URL;
  const expectedMd5 = (options.md5 ?? CIFAR10_MD5).toLowerCase();
  const cacheDir = options.cacheDir ?? defaultCifar10CacheDir();
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const target = path.join(cacheDir, CIFAR10_ARCHIVE_DIR);
  await fs.mkdir(cacheDir, { recursive: true });
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const archive = path.join(cacheDir, `.cifar-10-binary-${tag}.tar.gz.part`);
  const extractDir = path.join(cacheDir, `.extract-${tag}`);
  try {
    log(`downloading CIFAR-10 from ${url} into ${cacheDir}`);
    const md5 = await fetchToFile(url, archive, options.progress ?? 'auto', log, options.idleTimeoutMs);
    if (md5 !== expectedMd5) throw new ChecksumError(url, expectedMd5, md5);
    await fs.mkdir(extractDir);
    try {
      await tar.x({ file: archive, cwd: extractDir, strict: true });
    } catch (err) {
      throw new DownloadError(url, `cannot extract the archive from ${url}: ${(err as Error).message}`, { cause: err });
    }
    const extracted = path.join(extractDir, CIFAR10_ARCHIVE_DIR);
    const files = await fs.readdir(extracted).catch(() => [] as string[]);
    if (!files.some((f) => CIFAR10_TRAIN_FILES.includes(f) || f === CIFAR10_TEST_FILE)) {
      throw new DownloadError(
        url,
        `the archive from ${url} has no ${CIFAR10_ARCHIVE_DIR}/data_batch_*.bin, found ` +
          `${JSON.stringify((await fs.readdir(extractDir)).slice(0, 10))}`,
      );
    }
    try {
      await fs.rename(extracted, target);
    } catch (err) {
      // Another process finished the same download first; its copy passed the same checks.
      if (!(await isDir(target))) throw err;
    }
    log(`CIFAR-10 ready in ${target}`);
    return target;
  } finally {
    await fs.rm(archive, { force: true });
    await fs.rm(extractDir, { recursive: true, force: true });
  }
}

/** Streams `url` into `file`, following redirects, and returns the MD5 of the bytes received. */
async function fetchToFile(
  url: string,
  file: string,
  progressMode: ProgressMode,
  log: (line: string) => void,
  idleTimeoutMs = DEFAULT_IDLE_TIMEOUT_MS,
): Promise<string> {
  const response = await openResponse(url, idleTimeoutMs);
  const lengthHeader = response.headers['content-length'];
  const total = lengthHeader === undefined ? undefined : Number(lengthHeader);
  const hash = createHash('md5');
  const progress = createProgressReporter(progressMode, 'CIFAR-10', log);
  let received = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      received += chunk.length;
      progress.update(received);
      done(null, chunk);
    },
  });
  progress.start(total);
  try {
    await pipeline(response, meter, createWriteStream(file));
  } catch (err) {
    throw new DownloadError(
      url,
      `download of ${url} broke off after ${received} of ${total ?? 'unknown'} bytes: ${(err as Error).message}`,
      { cause: err },
    );
  } finally {
    progress.stop();
  }
  if (total !== undefined && received !== total) {
    throw new DownloadError(url, `download of ${url} is incomplete: expected ${total} bytes, got ${received}`);
  }
  return hash.digest('hex');
}

/** GET with redirects; resolves with a 200 response whose body has not been read yet. */
function openResponse(url: string, idleTimeoutMs: number, redirects = 0): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (err) {
      reject(new DownloadError(url, `invalid download URL ${url}`, { cause: err }));
      return;
    }
    const client = parsed.protocol === 'https:' ? https : parsed.protocol === 'http:' ? http : undefined;
    if (!client) {
      reject(new DownloadError(url, `unsupported URL scheme ${parsed.protocol}, expected http: or https:`));
      return;
    }
    const req = client.get(parsed, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirects >= MAX_REDIRECTS) {
          reject(new DownloadError(url, `too many redirects (more than ${MAX_REDIRECTS}) from ${url}`, { status }));
          return;
        }
        const next = new URL(res.headers.location, parsed).toString();
        openResponse(next, idleTimeoutMs, redirects + 1).then(resolve, reject);
        return;
      }
      if (status !== 200) {
        res.resume();
        reject(new DownloadError(url, `GET ${url} answered HTTP ${status} ${res.statusMessage ?? ''}, expected 200`, {
          status,
        }));
        return;
      }
      resolve(res);
    });
    req.setTimeout(idleTimeoutMs, () => {
      req.destroy(new Error(`no data for ${idleTimeoutMs} ms`));
    });
    req.on('error', (err) => reject(new DownloadError(url, `GET ${url} failed: ${err.message}`, { cause: err })));
  });
}
