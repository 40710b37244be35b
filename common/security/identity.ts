import { X509Certificate } from 'node:crypto';
import { CertificateError } from './errors';

/**
 * Who a certificate speaks for. A worker's certificate carries its worker id, so the coordinator can hold a
 * registration to the id it was issued for (a shared cluster-wide certificate could not tell workers
 * apart); an operator's certificate may call `Scale`, a worker's may not.
 */
export const ROLES = ['coordinator', 'worker', 'operator'] as const;
/** One of `ROLES`. */
export type Role = (typeof ROLES)[number];

/** A role and, for workers and operators, a name (the worker id). */
export interface Identity {
  role: Role;
  /** The worker id or operator name; empty for the coordinator. */
  name: string;
}

/** Trust domain of the SPIFFE-style URIs in the certificates' subjectAltName. */
export const TRUST_DOMAIN = 'shardwise';

const URI_PATTERN = new RegExp(`^spiffe://${TRUST_DOMAIN}/(${ROLES.join('|')})(?:/([A-Za-z0-9][A-Za-z0-9._-]*))?$`);

/** The subjectAltName URI naming an identity: `spiffe://shardwise/worker/worker-1`. */
export function identityUri(identity: Identity): string {
  return `spiffe://${TRUST_DOMAIN}/${identity.role}${identity.name === '' ? '' : `/${identity.name}`}`;
}

/**
 * The identity a certificate was issued for, from its subjectAltName URI; undefined when it carries none
 * (a certificate from some other issuer that happens to chain to the same CA is still not a member).
 */
export function identityOf(certificate: X509Certificate | string | Buffer): Identity | undefined {
  const cert = certificate instanceof X509Certificate ? certificate : new X509Certificate(certificate);
  for (const entry of (cert.subjectAltName ?? '').split(/,\s*/)) {
    if (!entry.startsWith('URI:')) continue;
    const match = URI_PATTERN.exec(entry.slice(4));
    if (match) return { role: match[1] as Role, name: match[2] ?? '' };
  }
  return undefined;
}

/** Like `identityOf`, but a certificate without an identity is an error naming `file`. */
export function requireIdentity(certificate: X509Certificate | string | Buffer, file: string): Identity {
  const identity = identityOf(certificate);
  if (identity === undefined) {
    throw new CertificateError(file, `expected a subjectAltName URI spiffe://${TRUST_DOMAIN}/<role>[/<name>] (made by \`shardwise certs\`), found none`);
  }
  return identity;
}
