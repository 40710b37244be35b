import type { PeerCertificate } from 'node:tls';
import { type Identity, identityOf } from './identity';

/** What grpc-js tells a handler about the connection a call came on (`call.getAuthContext()`). */
export interface AuthContextSource {
  getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: PeerCertificate } | null;
}

/**
 * Identities already read, by certificate (its SHA-256 fingerprint). grpc-js builds a new certificate object
 * for each call (`getPeerCertificate()` in `getAuthContext`), so a cache by object missed every time and each
 * heartbeat parsed the certificate twice (`authorize`, then `bindWorker`).
 */
const known = new Map<string, Identity | null>();
/** Certificates remembered at most; past it the cache starts afresh (certificates rotate, workers come and go). */
const MAX_KNOWN_CERTIFICATES = 1024;

/**
 * The identity in the client certificate of the connection `call` came on; undefined on a plaintext
 * connection or for a certificate without a shardwise identity.
 */
export function callIdentity(call: AuthContextSource): Identity | undefined {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  if (!cert?.raw) return undefined;
  let identity = known.get(cert.fingerprint256);
  if (identity === undefined) {
    identity = identityOf(cert.raw) ?? null;
    if (known.size >= MAX_KNOWN_CERTIFICATES) known.clear();
    known.set(cert.fingerprint256, identity);
  }
  return identity ?? undefined;
}

/**
 * The data-plane member id an identity may act as: a worker's is its worker id, the coordinator's is
 * `coordinatorMemberId` (its id in every reduction); an operator takes part in none, and neither does a
 * worker certificate that names the coordinator's member id (it could pose as the coordinator).
 */
export function memberIdOf(identity: Identity, coordinatorMemberId: string): string | undefined {
  if (identity.role === 'worker') return identity.name === coordinatorMemberId ? undefined : identity.name;
  if (identity.role === 'coordinator') return coordinatorMemberId;
  return undefined;
}
