/**
 * Identities and certificates: who may register, reduce and scale. `shardwise certs` makes a development CA
 * and one certificate per coordinator, worker and operator, each naming its identity; processes load theirs
 * from a `--tls-dir` and speak mutual TLS on gRPC and on the data plane, and workers present a join token.
 */
export { CertificateError } from './errors';
export { type Identity, identityOf, identityUri, requireIdentity, type Role, ROLES, TRUST_DOMAIN } from './identity';
export { CERT_FILES, type CertificatePair, type DevCertificateOptions, type DevCertificates, makeDevCertificates } from './dev-certificates';
export {
  checkTlsMaterial,
  loadTlsCredentials,
  readJoinToken,
  type TlsCredentials,
  type TlsFiles,
  type TlsMaterial,
} from './tls-credentials';
export { type ReloadOptions, type ReloadOutcome, ReloadingTlsCredentials, TLS_RELOAD_INTERVAL_MS } from './reloading-credentials';
export { grpcChannelCredentials, grpcServerCredentials } from './grpc-tls';
export { type AuthContextSource, callIdentity, memberIdOf } from './peer-identity';
export { JOIN_TOKEN_METADATA_KEY, joinTokenMatches } from './join-token';
export { type AuthenticatedSocket, connectMutualTls, createMutualTlsServer } from './tls-sockets';
