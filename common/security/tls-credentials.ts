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
  readonly files: TlsFiles;
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

/** The three PEM files of a process's credentials. */
export interface TlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** What `identity` proves itself with and trusts, as read from its files. */
export interface TlsMaterial {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** Where `identity`'s files are in `dir`, and how to make them, for messages. */
export function tlsFilesOf(dir: string, identity: Identity): { files: TlsFiles; hint: string } {
  const root = path.resolve(dir);
  const pair = CERT_FILES.pair(identity);
  const files = { ca: path.join(root, CERT_FILES.caCert), cert: path.join(root, pair.cert), key: path.join(root, pair.key) };
  return { files, hint: `make it with \`shardwise certs --out ${dir}${identity.role === 'worker' ? ` --worker-id ${identity.name}` : ''}\`` };
}

/** Reads the three files; a missing or unreadable one is a CertificateError naming it. */
export function readTlsMaterial(files: TlsFiles, identity: Identity, hint: string): TlsMaterial {
  return {
    ca: read(files.ca, 'CA certificate', hint),
    cert: read(files.cert, `certificate of ${identityUri(identity)}`, hint),
    key: read(files.key, `private key of ${identityUri(identity)}`, hint),
  };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** The certificates of a CA file (a bundle may hold several, e.g. the old and the new CA during a rotation). */
function caCertificates(file: string, ca: Buffer): X509Certificate[] {
  const blocks = ca.toString('latin1').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new CertificateError(file, 'expected one or more PEM certificates (-----BEGIN CERTIFICATE-----), found none');
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new CertificateError(file, `expected PEM certificates, certificate ${i + 1} does not parse: ${(err as Error).message}`, { cause: err });
    }
  });
}

/**
 * Checks that `material` is a usable set for `identity`, or throws a CertificateError naming the file at
 * fault: the CA file must hold certificates, the certificate must parse, name `identity`, be issued by one
 * of the CA's certificates and not have expired, and the key must be the certificate's. A file caught
 * half-written fails one of these, so a rotation in progress is never taken for a finished one.
 */
export function checkTlsMaterial(files: TlsFiles, identity: Identity, material: TlsMaterial, now = new Date()): void {
  const authorities = caCertificates(files.ca, material.ca);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(material.cert);
  } catch (err) {
    throw new CertificateError(files.cert, `expected a PEM certificate: ${(err as Error).message}`, { cause: err });
  }
  const found = requireIdentity(x509, files.cert);
  if (found.role !== identity.role || found.name !== identity.name) {
    throw new CertificateError(files.cert, `expected a certificate for ${identityUri(identity)}, it is for ${identityUri(found)}`);
  }
  if (!authorities.some((ca) => x509.checkIssued(ca) && x509.verify(ca.publicKey))) {
    throw new CertificateError(files.cert, `expected a certificate issued by the CA in ${files.ca} (${authorities.map((ca) => ca.subject.replace(/\n/g, ', ')).join('; ')}), ` +
      `it was issued by ${x509.issuer.replace(/\n/g, ', ')}`);
  }
  if (new Date(x509.validTo).getTime() < now.getTime()) throw new CertificateError(files.cert, `expired on ${x509.validTo}`);
  try {
    if (!x509.checkPrivateKey(createPrivateKey(material.key))) throw new Error('the key does not belong to the certificate');
  } catch (err) {
    throw new CertificateError(files.key, `expected the private key of ${files.cert}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Loads `identity`'s credentials from `dir`. Fails, naming the file, when one is missing or unreadable,
 * when the certificate names another identity (a worker started with another worker's files), is not from
 * the folder's CA or has expired, or when the key is not the certificate's.
 */
export function loadTlsCredentials(dir: string, identity: Identity): TlsCredentials {
  const { files, hint } = tlsFilesOf(dir, identity);
  const material = readTlsMaterial(files, identity, hint);
  checkTlsMaterial(files, identity, material);
  const joinToken = identity.role === 'operator' ? undefined : readJoinToken(path.join(path.resolve(dir), CERT_FILES.joinToken));
  return { identity, files, ...material, joinToken };
}
