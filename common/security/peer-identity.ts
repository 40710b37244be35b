import type { PeerCertificate } from 'node:tls';
import { type Identity, identityOf } from './identity';

/** What grpc-js tells a handler about the connection a call came on (`call.getAuthContext()`). */
export interface AuthContextSource {
  getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: PeerCertificate } | null;
}

/** Identities already read, per peer certificate object (grpc-js builds one per connection, not per call). */
const known = new WeakMap<PeerCertificate, Identity | null>();

/**
 * The identity in the client certificate of the connection `call` came on; undefined on a plaintext
 * connection or for a certificate without a shardwise identity.
 */
export function callIdentity(call: AuthContextSource): Identity | undefined {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  if (!cert?.raw) return undefined;
  let identity = known.get(cert);
  if (identity === undefined) {
    identity = identityOf(cert.raw) ?? null;
    known.set(cert, identity);
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
