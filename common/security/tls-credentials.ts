import { X509Certificate, createPrivateKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CERT_FILES } from './dev-certificates';
import { CertificateError } from './errors';
import { type Identity, identityUri, requireIdentity } from './identity';

/**
 * What one process proves itself with and whom it trusts: the CA, its own certificate and key, and (for a
 * coordinator or a worker) the job's join token. Read from a `--tls-dir` folder in the layout
 * `shardwise certs` writes (CERT_FILES): `ca.crt`, the process's own pair (`coordinator.crt`,
 * `workers/<id>.crt`, `operators/<name>.crt`) and `join-token`. The CA's key is never needed.
 */
export interface TlsCredentials {
  /** Who the certificate speaks for (checked against its subjectAltName URI). */
  readonly identity: Identity;
  /** The files read, so the gRPC layer can watch them for a rotation. */
  readonly files: { readonly ca: string; readonly cert: string; readonly key: string };
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  /** The job's join token (coordinator and worker only; an operator does not register). */
  readonly joinToken?: Buffer;
}

function read(file: string, what: string, hint: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new CertificateError(file, `cannot read the ${what} (${code}); ${hint}`, { cause: err });
  }
}

/** The job's join token from `file`: its bytes without the trailing newline; at least 16 characters. */
export function readJoinToken(file: string): Buffer {
  const token = read(file, 'join token', 'it is made by `shardwise certs`').toString('utf8').trim();
  if (token.length < 16) throw new CertificateError(file, `expected a join token of 16 characters or more, found ${token.length}`);
  return Buffer.from(token, 'utf8');
}

/**
 * Loads `identity`'s credentials from `dir`. Fails, naming the file, when one is missing or unreadable,
 * when the certificate names another identity (a worker started with another worker's files), or when
 * the key is not the certificate's.
 */
export function loadTlsCredentials(dir: string, identity: Identity): TlsCredentials {
  const root = path.resolve(dir);
  const pair = CERT_FILES.pair(identity);
  const files = { ca: path.join(root, CERT_FILES.caCert), cert: path.join(root, pair.cert), key: path.join(root, pair.key) };
  const make = `make it with \`shardwise certs --out ${dir}${identity.role === 'worker' ? ` --worker-id ${identity.name}` : ''}\``;
  const ca = read(files.ca, 'CA certificate', make);
  const cert = read(files.cert, `certificate of ${identityUri(identity)}`, make);
  const key = read(files.key, `private key of ${identityUri(identity)}`, make);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new CertificateError(files.cert, `expected a PEM certificate: ${(err as Error).message}`, { cause: err });
  }
  const found = requireIdentity(x509, files.cert);
  if (found.role !== identity.role || found.name !== identity.name) {
    throw new CertificateError(files.cert, `expected a certificate for ${identityUri(identity)}, it is for ${identityUri(found)}`);
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key))) throw new Error('the key does not belong to the certificate');
  } catch (err) {
    throw new CertificateError(files.key, `expected the private key of ${files.cert}: ${(err as Error).message}`, { cause: err });
  }
  const joinToken = identity.role === 'operator' ? undefined : readJoinToken(path.join(root, CERT_FILES.joinToken));
  return { identity, files, ca, cert, key, joinToken };
}
