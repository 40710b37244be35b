import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CERT_FILES, deriveBusKey, makeDevCertificates, readJoinToken } from '../common';

/**
 * The certificates of one local cluster: a development CA, the coordinator's pair, one pair per worker id
 * (issued as workers are started, so a scale-up gets its own) and the join token, in a private folder
 * (mode 0700) that is removed when the cluster stops, as the NATS credentials are. Not in the run
 * directory: a CA key left beside the checkpoints would outlive the job it was made for.
 */
export class ClusterCredentials {
  private constructor(readonly dir: string) {}

  /** Makes the CA, the coordinator's certificate and the token. Needs the `openssl` command. */
  static async create(): Promise<ClusterCredentials> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-tls-'));
    try {
      await makeDevCertificates({ outDir: dir, workerIds: [], operators: ['admin'] });
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return new ClusterCredentials(dir);
  }

  /** Issues the certificates of `workerIds` that do not have one yet. */
  async issueWorkers(workerIds: readonly string[]): Promise<void> {
    if (workerIds.length > 0) await makeDevCertificates({ outDir: this.dir, workerIds, operators: ['admin'] });
  }

  /** The job's bus key (from the join token), to act only on the events the coordinator signed. */
  busKey(jobId: string): Buffer {
    return deriveBusKey(readJoinToken(path.join(this.dir, CERT_FILES.joinToken)), jobId);
  }

  /** Removes every file; the cluster's processes have exited. */
  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
