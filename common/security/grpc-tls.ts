import { ChannelCredentials, ServerCredentials } from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { identityOf, identityUri } from './identity';
import type { TlsCredentials } from './tls-credentials';

/*
 * gRPC over mutual TLS. The server requires a client certificate from the job's CA; which calls a
 * certificate may make is the coordinator's policy (coordinator/call-access.ts), read with `callIdentity`.
 */

/** Server credentials: this process's pair, and a client certificate from `ca` required on every connection. */
export function grpcServerCredentials(tls: TlsCredentials): ServerCredentials {
  return ServerCredentials.createSsl(tls.ca, [{ cert_chain: tls.cert, private_key: tls.key }], true);
}

/**
 * Channel credentials of a worker or an operator: its pair, and the job's CA. The server is checked by
 * identity, not host name: its certificate must name the coordinator (spiffe://shardwise/coordinator), so
 * the coordinator is reachable under any name (a Service, a pod IP) without reissuing its certificate,
 * and a worker's certificate, from the same CA, cannot pose as the coordinator.
 */
export function grpcChannelCredentials(tls: TlsCredentials): ChannelCredentials {
  return ChannelCredentials.createSsl(tls.ca, tls.key, tls.cert, {
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const identity = cert.raw ? identityOf(cert.raw) : undefined;
      if (identity?.role === 'coordinator') return undefined;
      return new Error(`expected the coordinator's certificate (${identityUri({ role: 'coordinator', name: '' })}), ` +
        `the server presented ${identity ? identityUri(identity) : 'one without a shardwise identity'}`);
    },
  });
}
