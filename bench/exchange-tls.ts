/**
 * `bench/exchange.ts --tls`: the same exchanges over mutual TLS, to measure what encryption costs. The
 * bench process makes a development CA and certificates (coordinator, worker-0 ... worker-N) in a scratch
 * folder and hands it to its worker processes in the environment, as a launcher hands `--tls-dir`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type Identity, loadTlsCredentials, makeDevCertificates, type TlsCredentials } from '../common';

/** Environment variable naming the credentials folder for the bench's processes. */
const TLS_DIR_ENV = 'SHARDWISE_BENCH_TLS_DIR';

/** Makes credentials for up to `workers` workers and points this process and its children at them; returns a cleanup. */
export async function prepareBenchTls(workers: number): Promise<() => void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-bench-tls-'));
  await makeDevCertificates({ outDir: dir, workerIds: Array.from({ length: workers }, (_, i) => benchWorkerId(i)) });
  process.env[TLS_DIR_ENV] = dir;
  return () => fs.rmSync(dir, { recursive: true, force: true });
}

/** The id of the bench's worker `rank` (also its data-plane member id). */
export function benchWorkerId(rank: number): string {
  return `worker-${rank}`;
}

/** `identity`'s credentials when the bench runs with `--tls`, else undefined (plaintext). */
export function benchTls(identity: Identity): TlsCredentials | undefined {
  const dir = process.env[TLS_DIR_ENV];
  return dir ? loadTlsCredentials(dir, identity) : undefined;
}
