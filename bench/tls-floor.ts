/**
 * What encrypting the data plane costs at the least on this machine, to read `bench/exchange.ts --tls`
 * against: CPU per MB moved over loopback through Node's TLS (TLS 1.3, the data plane's AES-128-GCM, reads
 * landing in place with `onread` as the data plane's do) and over plain TCP the same way, both ends in this
 * process. Every byte on the wire is encrypted once and decrypted once, so an allreduce's TLS cost cannot
 * fall below its MB on the wire times the difference; the bare cipher's share of it is what
 * `openssl speed -evp aes-128-gcm` (and `-decrypt`) reports for 16 KB blocks.
 *
 *   node --import tsx bench/tls-floor.ts [--mb 512]
 *
 * Prints `bench-tls-floor transport=tcp|tls mb=N cpu_ms_per_mb=X wall_ms_per_mb=Y`, then a `#` line with
 * the negotiated suite and the difference.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import type * as tls from 'node:tls';
import { connectMutualTls, createMutualTlsServer, loadTlsCredentials, makeDevCertificates } from '../common';

/** One write, as the data plane sends a segment of a 2.16M-float gradient (about 4.3 MB). */
const WRITE_BYTES = 4 * 1024 * 1024;

function argMb(): number {
  const i = process.argv.indexOf('--mb');
  const mb = i >= 0 ? Number(process.argv[i + 1]) : 512;
  if (!Number.isInteger(mb) || mb < WRITE_BYTES / 2 ** 20) throw new Error(`--mb: expected a whole number >= 4, got ${process.argv[i + 1]}`);
  return mb;
}

/** Sends `total` bytes from `sender` and resolves when the reader counted them all; CPU and wall ms of this process. */
async function pump(sender: net.Socket, received: () => number, total: number): Promise<{ cpuMs: number; wallMs: number }> {
  const chunk = randomBytes(WRITE_BYTES);
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  for (let sent = 0; sent < total; sent += WRITE_BYTES) {
    if (!sender.write(chunk)) await once(sender, 'drain');
  }
  while (received() < total) await new Promise((resolve) => setImmediate(resolve));
  const c = process.cpuUsage(c0);
  return { cpuMs: (c.user + c.system) / 1000, wallMs: Number(process.hrtime.bigint() - t0) / 1e6 };
}

/** A reader that lands every read in one reused buffer, as the data plane's `onread` does into tensors. */
function countingReader(): { onread: net.OnReadOpts; received: () => number } {
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  let n = 0;
  return { onread: { buffer, callback: (bytes: number) => ((n += bytes), true) }, received: () => n };
}

async function overTcp(total: number): Promise<{ cpuMs: number; wallMs: number }> {
  const accepted: net.Socket[] = [];
  const server = net.createServer((s) => accepted.push(s)).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const reader = countingReader();
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', onread: reader.onread });
  await once(client, 'connect');
  while (accepted.length === 0) await new Promise((resolve) => setImmediate(resolve));
  const result = await pump(accepted[0], reader.received, total);
  client.destroy();
  server.close();
  return result;
}

async function overTls(total: number, dir: string): Promise<{ cpuMs: number; wallMs: number; suite: string }> {
  const accepted: tls.TLSSocket[] = [];
  const coordinator = loadTlsCredentials(dir, { role: 'coordinator', name: '' });
  const server = createMutualTlsServer(coordinator, ({ socket }) => accepted.push(socket), (why) => console.error(`refused: ${why}`));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const reader = countingReader();
  const client = await connectMutualTls('127.0.0.1', (server.address() as net.AddressInfo).port,
    loadTlsCredentials(dir, { role: 'worker', name: 'worker-0' }), { role: 'coordinator', name: '' }, reader.onread);
  while (accepted.length === 0) await new Promise((resolve) => setImmediate(resolve));
  const result = await pump(accepted[0], reader.received, total);
  const suite = `${client.getProtocol()} ${client.getCipher().standardName}`;
  client.destroy();
  server.close();
  return { ...result, suite };
}

async function main(): Promise<void> {
  const mb = argMb();
  const total = mb * 2 ** 20;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-tls-floor-'));
  try {
    await makeDevCertificates({ outDir: dir, workerIds: ['worker-0'] });
    await overTcp(64 * 2 ** 20); // warm-up of both paths
    await overTls(64 * 2 ** 20, dir);
    const tcp = await overTcp(total);
    const secure = await overTls(total, dir);
    console.log(`bench-tls-floor transport=tcp mb=${mb} cpu_ms_per_mb=${(tcp.cpuMs / mb).toFixed(3)} wall_ms_per_mb=${(tcp.wallMs / mb).toFixed(3)}`);
    console.log(`bench-tls-floor transport=tls mb=${mb} cpu_ms_per_mb=${(secure.cpuMs / mb).toFixed(3)} wall_ms_per_mb=${(secure.wallMs / mb).toFixed(3)}`);
    console.log(`#   both ends in one process; TLS negotiated ${secure.suite}; the TLS cost of an allreduce is at least ` +
      `(tls - tcp) cpu_ms_per_mb = ${((secure.cpuMs - tcp.cpuMs) / mb).toFixed(3)} times its MB on the wire`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
