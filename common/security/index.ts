/**
 * Identities and certificates: who may register, reduce and scale. `shardwise certs` makes a development CA
 * and one certificate per coordinator, worker and operator, each naming its identity.
 */
export { CertificateError } from './errors';
export { type Identity, identityOf, identityUri, requireIdentity, type Role, ROLES, TRUST_DOMAIN } from './identity';
export { CERT_FILES, type CertificatePair, type DevCertificateOptions, type DevCertificates, makeDevCertificates } from './dev-certificates';
