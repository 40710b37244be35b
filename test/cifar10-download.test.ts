import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tar from 'tar';
import {
  CIFAR10_ARCHIVE_DIR,
  ChecksumError,
  type Cifar10Images,
  DatasetError,
  DownloadError,
  defaultCifar10CacheDir,
  downloadCifar10,
  encodeCifar10Records,
  loadCifar10,
  resolveCifar10Dir,
} from '../common/data';
import { Rng } from '../common/random';

function generated(count: number, seed: number): Cifar10Images {
  const rng = new Rng(seed);
  const images = Uint8Array.from({ length: count * 3072 }, () => rng.int(256));
  const labels = Uint8Array.from({ length: count }, () => rng.int(10));
  return { images, labels, count };
}

/**
 * A loopback HTTP server speaking real HTTP/1.1: the archive in chunks with Content-Length, a redirect,
 * a 404, and a body cut off halfway by destroying the socket.
 */
async function startServer(archive: Buffer): Promise<{ server: http.Server; base: string; hits: Map<string, number> }> {
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    hits.set(url, (hits.get(url) ?? 0) + 1);
    const chunk = 16 * 1024;
    if (url === '/cifar.tar.gz' || url === '/no-length.tar.gz') {
      const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/gzip' };
      if (url === '/cifar.tar.gz') headers['content-length'] = archive.length;
      res.writeHead(200, headers);
      for (let o = 0; o < archive.length; o += chunk) res.write(archive.subarray(o, o + chunk));
      res.end();
    } else if (url === '/moved') {
      res.writeHead(302, { location: '/cifar.tar.gz' });
      res.end();
    } else if (url === '/truncated.tar.gz') {
      res.writeHead(200, { 'content-length': archive.length });
      res.write(archive.subarray(0, archive.length >> 1), () => res.socket?.destroy());
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, base: `http://127.0.0.1:${port}`, hits };
}

describe('cifar10-download', () => {
  let root: string;
  let archive: Buffer;
  let md5: string;
  let batches: Cifar10Images[];
  let server: http.Server;
  let base: string;
  let hits: Map<string, number>;
  let cacheDir: string;
  let lines: string[];
  const quiet = () => ({ progress: 'lines' as const, log: (line: string) => lines.push(line) });

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'shardwise-cifar-download-'));
    const tree = path.join(root, 'tree', CIFAR10_ARCHIVE_DIR);
    await fs.mkdir(tree, { recursive: true });
    batches = [1, 2, 3, 4, 5].map((i) => generated(12, i));
    for (let i = 0; i < 5; i++) {
      await fs.writeFile(path.join(tree, `data_batch_${i + 1}.bin`), encodeCifar10Records(batches[i]));
    }
    await fs.writeFile(path.join(tree, 'test_batch.bin'), encodeCifar10Records(generated(8, 9)));
    await fs.writeFile(path.join(tree, 'batches.meta.txt'), 'airplane\nautomobile\n');
    const file = path.join(root, 'cifar.tar.gz');
    await tar.c({ gzip: true, file, cwd: path.join(root, 'tree') }, [CIFAR10_ARCHIVE_DIR]);
    archive = await fs.readFile(file);
    md5 = createHash('md5').update(archive).digest('hex');
    ({ server, base, hits } = await startServer(archive));
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await fs.rm(root, { recursive: true, force: true });
  });

  beforeEach(async () => {
    cacheDir = await fs.mkdtemp(path.join(root, 'cache-'));
    lines = [];
  });

  it('downloads, verifies and extracts into the cache, leaving no temporary files', async () => {
    const dir = await downloadCifar10({ cacheDir, url: `${base}/cifar.tar.gz`, md5, ...quiet() });
    assert.equal(dir, path.join(cacheDir, CIFAR10_ARCHIVE_DIR));
    assert.deepEqual(await fs.readdir(cacheDir), [CIFAR10_ARCHIVE_DIR]);
    const train = await loadCifar10(dir, 'train');
    assert.equal(train.count, 60);
    assert.deepEqual(train.images.subarray(12 * 3072, 24 * 3072), batches[1].images);
    assert.equal((await loadCifar10(dir, 'test')).count, 8);
    // Line progress (stderr is not a terminal here): a start line and one per 10% at most.
    const percent = lines.filter((l) => /\d+%/.test(l));
    assert.match(percent[0], /0% of 0\.\d MiB/);
    assert.match(percent[percent.length - 1], /100%/);
    assert.ok(percent.length >= 5 && percent.length <= 11, percent.join('\n'));
  });

  it('follows redirects and copes without Content-Length', async () => {
    assert.ok(archive.length > 64 * 1024, 'the archive spans several chunks');
    const dir = await downloadCifar10({ cacheDir, url: `${base}/moved`, md5, ...quiet() });
    assert.equal((await loadCifar10(dir, 'train')).count, 60);
    const other = await fs.mkdtemp(path.join(root, 'cache-'));
    const dir2 = await downloadCifar10({ cacheDir: other, url: `${base}/no-length.tar.gz`, md5, ...quiet() });
    assert.equal((await loadCifar10(dir2, 'train')).count, 60);
  });

  it('rejects an archive with the wrong MD5 and leaves nothing in the cache', async () => {
    const wrong = '0'.repeat(32);
    await assert.rejects(downloadCifar10({ cacheDir, url: `${base}/cifar.tar.gz`, md5: wrong, ...quiet() }), (err: unknown) => {
      assert.ok(err instanceof ChecksumError && err instanceof DownloadError);
      assert.equal(err.expected, wrong);
      assert.equal(err.actual, md5);
      assert.match(err.message, new RegExp(`expected ${wrong}, got ${md5}`));
      return true;
    });
    assert.deepEqual(await fs.readdir(cacheDir), []);
  });

  it('reports an HTTP 404 with its status', async () => {
    const url = `${base}/missing.tar.gz`;
    await assert.rejects(downloadCifar10({ cacheDir, url, md5, ...quiet() }), (err: unknown) => {
      assert.ok(err instanceof DownloadError);
      assert.equal(err.status, 404);
      assert.equal(err.url, url);
      assert.match(err.message, /HTTP 404.*expected 200/);
      return true;
    });
    assert.deepEqual(await fs.readdir(cacheDir), []);
  });

  it('fails on a body cut off by the server and leaves no partial cache', async () => {
    await assert.rejects(downloadCifar10({ cacheDir, url: `${base}/truncated.tar.gz`, md5, ...quiet() }), (err: unknown) => {
      assert.ok(err instanceof DownloadError && !(err instanceof ChecksumError));
      assert.match(err.message, /truncated\.tar\.gz (broke off|is incomplete)/);
      return true;
    });
    assert.deepEqual(await fs.readdir(cacheDir), []);
  });

  it('fails cleanly when nothing listens at the URL', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    await assert.rejects(downloadCifar10({ cacheDir, url: `http://127.0.0.1:${port}/x.tar.gz`, md5, ...quiet() }), /ECONNREFUSED/);
    assert.deepEqual(await fs.readdir(cacheDir), []);
  });

  describe('resolveCifar10Dir', () => {
    it('prefers the explicit folder, then CIFAR10_DIR, and rejects one that does not exist', async () => {
      const explicit = await fs.mkdtemp(path.join(root, 'explicit-'));
      const fromEnv = await fs.mkdtemp(path.join(root, 'env-'));
      const env = { CIFAR10_DIR: fromEnv };
      assert.equal(await resolveCifar10Dir({ dir: explicit, env, cacheDir, download: false }), explicit);
      assert.equal(await resolveCifar10Dir({ env, cacheDir, download: false }), fromEnv);
      const missing = path.join(root, 'absent');
      await assert.rejects(resolveCifar10Dir({ dir: missing, env, cacheDir }), (err: unknown) => {
        assert.ok(err instanceof DatasetError);
        assert.equal(err.path, missing);
        assert.match(err.message, /data\.dir is .*absent, which is not a folder/);
        return true;
      });
      await assert.rejects(resolveCifar10Dir({ env: { CIFAR10_DIR: missing }, cacheDir }), /CIFAR10_DIR is .*absent/);
    });

    it('downloads once into the cache, then reuses it without a request', async () => {
      const url = `${base}/cifar.tar.gz`;
      const before = hits.get('/cifar.tar.gz') ?? 0;
      const dir = await resolveCifar10Dir({ env: {}, cacheDir, url, md5, ...quiet() });
      assert.equal(dir, path.join(cacheDir, CIFAR10_ARCHIVE_DIR));
      assert.equal(hits.get('/cifar.tar.gz'), before + 1);
      assert.equal(await resolveCifar10Dir({ env: {}, cacheDir, url, md5, download: false }), dir);
      assert.equal(hits.get('/cifar.tar.gz'), before + 1);
    });

    it('says how to use a local copy when the download fails', async () => {
      await assert.rejects(resolveCifar10Dir({ env: {}, cacheDir, url: `${base}/missing.tar.gz`, md5, ...quiet() }), (err: unknown) => {
        assert.ok(err instanceof DownloadError);
        assert.equal(err.status, 404);
        assert.match(err.message, /HTTP 404.*; to use a local copy instead, set CIFAR10_DIR or data\.dir/);
        return true;
      });
    });

    it('says how to point at a local copy when downloading is off', async () => {
      await assert.rejects(resolveCifar10Dir({ env: {}, cacheDir, download: false }), (err: unknown) => {
        assert.ok(err instanceof DatasetError);
        assert.match(err.message, /CIFAR10_DIR/);
        assert.match(err.message, /data\.dir/);
        return true;
      });
    });

    it('finds the cache under SHARDWISE_CACHE_DIR', async () => {
      const shardwiseCache = path.join(root, 'sw-cache');
      assert.equal(defaultCifar10CacheDir({ SHARDWISE_CACHE_DIR: shardwiseCache }), path.join(shardwiseCache, 'cifar10'));
      assert.equal(defaultCifar10CacheDir({}), path.join(os.homedir(), '.cache', 'shardwise', 'cifar10'));
      const extracted = path.join(shardwiseCache, 'cifar10', CIFAR10_ARCHIVE_DIR);
      await fs.mkdir(extracted, { recursive: true });
      assert.equal(await resolveCifar10Dir({ env: { SHARDWISE_CACHE_DIR: shardwiseCache }, download: false }), extracted);
    });
  });
});
