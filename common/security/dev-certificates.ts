import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { isIP } from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { CertificateError } from './errors';
import { type Identity, identityUri } from './identity';

const run = promisify(execFile);

/** What `shardwise certs` makes. */
export interface DevCertificateOptions {
  /** Folder for the files; created when missing. */
  outDir: string;
  /** Worker ids to issue certificates for (`worker-1`, or pod names `shardwise-worker-0`). */
  workerIds: readonly string[];
  /** Operator names: their certificates may call `Scale`. @default ['admin'] */
  operators?: readonly string[];
  /** Names and addresses the coordinator is dialled at. @default ['localhost', '127.0.0.1'] */
  coordinatorHosts?: readonly string[];
  /** Validity of every certificate. @default 365 */
  days?: number;
  /** The openssl binary. @default 'openssl' */
  openssl?: string;
}

/** A certificate and its private key, as PEM file paths. */
export interface CertificatePair {
  cert: string;
  key: string;
}

/** What is in the folder afterwards, and which files this call wrote. */
export interface DevCertificates {
  dir: string;
  ca: CertificatePair;
  coordinator: CertificatePair;
  workers: ReadonlyMap<string, CertificatePair>;
  operators: ReadonlyMap<string, CertificatePair>;
  /** File holding the join token a worker presents when it registers. */
  joinToken: string;
  /** Files written by this call. */
  written: readonly string[];
  /** Files that were there already and were kept as they were. */
  kept: readonly string[];
}

/** File names inside the folder, so the chart, the launcher and the docs agree. */
export const CERT_FILES = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  joinToken: 'join-token',
  /** `coordinator.crt`, `workers/<id>.crt`, `operators/<name>.crt`, each with its `.key` beside it. */
  pair: (identity: Identity): CertificatePair => {
    const base = identity.role === 'coordinator' ? 'coordinator' : `${identity.role}s/${identity.name}`;
    return { cert: `${base}.crt`, key: `${base}.key` };
  },
};

/**
 * Makes a development CA and the certificates of one job with the `openssl` CLI: the coordinator's (server
 * and client), one per worker (server and client: a worker also accepts its peers on the data plane), one
 * per operator (client), each naming its identity in a SPIFFE-style subjectAltName URI, plus a random join
 * token. ECDSA P-256 keys, written mode 0600.
 *
 * Running it again on the same folder loses nothing: the CA and every existing pair are kept, and only
 * missing ones are issued (with the kept CA), so adding a worker is one more run. Each pair is made in a
 * scratch folder and moved into place only once complete.
 */
export async function makeDevCertificates(options: DevCertificateOptions): Promise<DevCertificates> {
  const dir = path.resolve(options.outDir);
  const openssl = options.openssl ?? 'openssl';
  const days = options.days ?? 365;
  if (!Number.isInteger(days) || days < 1) throw new CertificateError('days', `expected a whole number of days >= 1, got ${days}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  const kept: string[] = [];
  const at = (pair: CertificatePair): CertificatePair => ({ cert: path.join(dir, pair.cert), key: path.join(dir, pair.key) });
  const issuer = new Issuer(openssl, dir, days);

  const ca = at({ cert: CERT_FILES.caCert, key: CERT_FILES.caKey });
  if (!fs.existsSync(ca.cert) || !fs.existsSync(ca.key)) {
    if (fs.existsSync(ca.cert) !== fs.existsSync(ca.key)) {
      throw new CertificateError(dir, `holds only one of ${CERT_FILES.caCert} and ${CERT_FILES.caKey}; restore the other or remove both`);
    }
    written.push(...(await issuer.makeCa(ca)));
  } else kept.push(ca.cert, ca.key);
  const issue = async (identity: Identity, usage: string, hosts: readonly string[] = []): Promise<CertificatePair> => {
    const pair = at(CERT_FILES.pair(identity));
    fs.mkdirSync(path.dirname(pair.cert), { recursive: true, mode: 0o700 });
    if (fs.existsSync(pair.cert)) kept.push(pair.cert, pair.key);
    else written.push(...(await issuer.makeLeaf(ca, pair, identity, usage, hosts)));
    return pair;
  };
  const coordinator = await issue({ role: 'coordinator', name: '' }, 'serverAuth,clientAuth', options.coordinatorHosts ?? ['localhost', '127.0.0.1']);
  const workers = new Map<string, CertificatePair>();
  for (const id of options.workerIds) workers.set(id, await issue({ role: 'worker', name: checkName('worker id', id) }, 'serverAuth,clientAuth'));
  const operators = new Map<string, CertificatePair>();
  for (const name of options.operators ?? ['admin']) {
    operators.set(name, await issue({ role: 'operator', name: checkName('operator name', name) }, 'clientAuth'));
  }
  const joinToken = path.join(dir, CERT_FILES.joinToken);
  if (!fs.existsSync(joinToken)) {
    fs.writeFileSync(joinToken, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    written.push(joinToken);
  } else kept.push(joinToken);
  return { dir, ca, coordinator, workers, operators, joinToken, written, kept };
}

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

function checkName(what: string, name: string): string {
  if (!NAME_PATTERN.test(name)) {
    throw new CertificateError(what, `expected 1-63 letters, digits, '.', '_' or '-' starting with a letter or digit, got ${JSON.stringify(name)}`);
  }
  return name;
}

/** Runs openssl in a scratch folder inside the target, then moves finished files into place. */
class Issuer {
  constructor(
    private readonly binary: string,
    private readonly dir: string,
    private readonly days: number,
  ) {}

  async makeCa(ca: CertificatePair): Promise<string[]> {
    return this.inScratch(ca, async (cert, key) => {
      await this.openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', key, '-out', cert, '-days', String(this.days), '-subj', '/CN=shardwise development CA',
        '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    });
  }

  async makeLeaf(ca: CertificatePair, pair: CertificatePair, identity: Identity, usage: string, hosts: readonly string[]): Promise<string[]> {
    return this.inScratch(pair, async (cert, key, scratch) => {
      const csr = path.join(scratch, 'request.csr');
      const extensions = path.join(scratch, 'extensions.cnf');
      const names = [`URI:${identityUri(identity)}`, ...hosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`))];
      fs.writeFileSync(extensions, [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        `extendedKeyUsage=${usage}`,
        `subjectAltName=${names.join(',')}`,
      ].join('\n'));
      const cn = identity.name === '' ? identity.role : `${identity.role} ${identity.name}`;
      await this.openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', key, '-out', csr, '-subj', `/CN=shardwise ${cn}`]);
      await this.openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial',
        `0x${randomBytes(16).toString('hex')}`, '-days', String(this.days), '-extfile', extensions, '-out', cert]);
    });
  }

  /** Makes `pair` in a fresh scratch folder and renames both files into place; the scratch goes either way. */
  private async inScratch(pair: CertificatePair, make: (cert: string, key: string, scratch: string) => Promise<void>): Promise<string[]> {
    const scratch = fs.mkdtempSync(path.join(this.dir, '.issuing-'));
    try {
      const cert = path.join(scratch, 'cert.pem');
      const key = path.join(scratch, 'key.pem');
      await make(cert, key, scratch);
      fs.chmodSync(key, 0o600);
      fs.renameSync(key, pair.key);
      fs.renameSync(cert, pair.cert);
      return [pair.cert, pair.key];
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  }

  private async openssl(args: string[]): Promise<void> {
    try {
      await run(this.binary, args, { timeout: 60_000 });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      const why = e.code === 'ENOENT' ? 'not found; install it (Debian: apt-get install openssl)' : (e.stderr?.trim() || e.message);
      throw new CertificateError(`${this.binary} ${args[0]}`, why, { cause: err });
    }
  }
}
