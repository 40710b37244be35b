import { createHash, X509Certificate } from 'node:crypto';
import * as path from 'node:path';
import { CERT_FILES } from './dev-certificates';
import { CertificateError } from './errors';
import { type Identity, identityUri } from './identity';
import {
  checkTlsMaterial,
  readJoinToken,
  readTlsMaterial,
  type TlsCredentials,
  type TlsFiles,
  tlsFilesOf,
  type TlsMaterial,
} from './tls-credentials';

/** How often watched credential files are read again. A mounted Kubernetes Secret changes within about a minute. */
export const TLS_RELOAD_INTERVAL_MS = 5_000;

/** How credentials are watched. */
export interface ReloadOptions {
  /** Read the files again this often while something uses the credentials. @default TLS_RELOAD_INTERVAL_MS */
  intervalMs?: number;
  /** Told of every reload and every refused rotation, in a sentence. @default ignored */
  log?: (line: string) => void;
}

/** What one look at the files found when they had changed. */
export type ReloadOutcome =
  | { readonly result: 'reloaded'; readonly certificate: X509Certificate }
  | { readonly result: 'refused'; readonly error: CertificateError };

/**
 * A process's credentials, read again from their files while in use, so that certificates rotated on disk
 * (`shardwise certs` into the folder, a Secret updated in place) take effect without a restart: the servers
 * and clients built on them (grpc-tls.ts, tls-sockets.ts) use the newest accepted set for every NEW
 * connection; connections already open go on with the certificate they were made with.
 *
 * A changed set is accepted only whole and valid (`checkTlsMaterial`): a file caught half-written, a key
 * that is not the certificate's, a certificate from outside the CA file or for another identity is refused
 * with an error naming the file, logged and counted once per distinct content, and the previous set stays
 * in force. The join token is read once, at load: rotating it needs a restart.
 *
 * The files are read only while something subscribes (a listening server, a gRPC channel), so a
 * credentials object nobody uses holds no timer.
 */
export class ReloadingTlsCredentials implements TlsCredentials {
  readonly identity: Identity;
  readonly files: TlsFiles;
  readonly joinToken?: Buffer;
  private material: TlsMaterial;
  /** Digest of the last content refused, so a broken file is reported once, not at every look. */
  private refusedDigest = '';
  private readonly listeners = new Set<(material: TlsMaterial) => void>();
  private readonly outcomeListeners = new Set<(outcome: ReloadOutcome) => void>();
  private timer?: NodeJS.Timeout;
  private readonly intervalMs: number;
  private readonly log: (line: string) => void;
  private readonly hint: string;

  private constructor(dir: string, identity: Identity, options: ReloadOptions) {
    const { files, hint } = tlsFilesOf(dir, identity);
    const material = readTlsMaterial(files, identity, hint);
    checkTlsMaterial(files, identity, material);
    this.identity = identity;
    this.files = files;
    this.hint = hint;
    this.material = material;
    this.joinToken = identity.role === 'operator' ? undefined : readJoinToken(path.join(path.resolve(dir), CERT_FILES.joinToken));
    this.intervalMs = options.intervalMs ?? TLS_RELOAD_INTERVAL_MS;
    if (!(this.intervalMs > 0)) throw new CertificateError(dir, `expected a positive reload interval in ms, got ${this.intervalMs}`);
    this.log = options.log ?? (() => undefined);
  }

  /** Loads `identity`'s credentials from `dir` as `loadTlsCredentials` does (same checks, same errors), then watches them. */
  static load(dir: string, identity: Identity, options: ReloadOptions = {}): ReloadingTlsCredentials {
    return new ReloadingTlsCredentials(dir, identity, options);
  }

  /** The CA certificates in force. */
  get ca(): Buffer {
    return this.material.ca;
  }

  /** The certificate in force. */
  get cert(): Buffer {
    return this.material.cert;
  }

  /** The private key in force. */
  get key(): Buffer {
    return this.material.key;
  }

  /** The set in force, as one value (a listener's argument). */
  get current(): TlsMaterial {
    return this.material;
  }

  /**
   * Calls `listener` with each newly accepted set; the files are watched while any listener is subscribed.
   * Returns the unsubscribe function.
   */
  subscribe(listener: (material: TlsMaterial) => void): () => void {
    this.listeners.add(listener);
    if (!this.timer) {
      this.timer = setInterval(() => this.reload(), this.intervalMs);
      this.timer.unref(); // watching never keeps a process alive
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  /** Calls `listener` with every reload and every refusal (metrics); starts no watching. Returns the unsubscribe function. */
  onOutcome(listener: (outcome: ReloadOutcome) => void): () => void {
    this.outcomeListeners.add(listener);
    return () => this.outcomeListeners.delete(listener);
  }

  /**
   * Reads the files now; when they differ from the set in force, accepts or refuses them. Returns what
   * happened, or undefined when nothing changed (or the same refused content is still there).
   */
  reload(): ReloadOutcome | undefined {
    let next: TlsMaterial;
    try {
      next = readTlsMaterial(this.files, this.identity, this.hint);
    } catch (err) {
      return this.refuse(err as CertificateError, (err as Error).message);
    }
    if (next.ca.equals(this.material.ca) && next.cert.equals(this.material.cert) && next.key.equals(this.material.key)) {
      this.refusedDigest = '';
      return undefined;
    }
    const digest = createHash('sha256').update(next.ca).update(next.cert).update(next.key).digest('hex');
    try {
      checkTlsMaterial(this.files, this.identity, next);
    } catch (err) {
      if (!(err instanceof CertificateError)) throw err;
      return this.refuse(err, digest);
    }
    this.material = next;
    this.refusedDigest = '';
    const certificate = new X509Certificate(next.cert);
    this.log(`security: reloaded the rotated credentials of ${identityUri(this.identity)} from ${path.dirname(this.files.ca)} ` +
      `(certificate serial ${certificate.serialNumber}, issued by ${certificate.issuer.replace(/\n/g, ', ')}, valid to ${certificate.validTo}); ` +
      'new connections use them, open ones go on');
    return this.emit({ result: 'reloaded', certificate }, next);
  }

  private refuse(error: CertificateError, digest: string): ReloadOutcome | undefined {
    if (digest === this.refusedDigest) return undefined;
    this.refusedDigest = digest;
    this.log(`security: refused the rotated credentials of ${identityUri(this.identity)}: ${error.message}; the previous certificate stays in force`);
    return this.emit({ result: 'refused', error });
  }

  private emit(outcome: ReloadOutcome, accepted?: TlsMaterial): ReloadOutcome {
    if (accepted) for (const listener of this.listeners) listener(accepted);
    for (const listener of this.outcomeListeners) listener(outcome);
    return outcome;
  }
}

/** `tls`'s subscription when its files are watched; a fixed set never changes, so nothing to undo. */
export function subscribeToRotation(tls: TlsCredentials, listener: (material: TlsMaterial) => void): () => void {
  return tls instanceof ReloadingTlsCredentials ? tls.subscribe(listener) : () => undefined;
}
