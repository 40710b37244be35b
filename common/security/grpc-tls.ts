import { ChannelCredentials, experimental, ServerCredentials } from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { identityOf, identityUri } from './identity';
import { ReloadingTlsCredentials } from './reloading-credentials';
import type { TlsCredentials, TlsMaterial } from './tls-credentials';

/*
 * gRPC over mutual TLS. The server requires a client certificate from the job's CA; which calls a
 * certificate may make is the coordinator's policy (coordinator/call-access.ts), read with `callIdentity`.
 * Credentials whose files are watched (ReloadingTlsCredentials) go through grpc-js's certificate-provider
 * credentials: the server swaps its secure context (http2 `setSecureContext`) and the channel builds each
 * new connection from the newest set, so a rotation on disk needs no restart and cuts no open connection.
 */

/** Server credentials: this process's pair, and a client certificate from `ca` required on every connection. */
export function grpcServerCredentials(tls: TlsCredentials): ServerCredentials {
  if (tls instanceof ReloadingTlsCredentials) {
    const provider = certificateProvider(tls);
    // Both arguments are the one provider: grpc-js 1.14 passes them to the constructor in swapped order.
    return experimental.createCertificateProviderServerCredentials(provider, provider, true);
  }
  return ServerCredentials.createSsl(tls.ca, [{ cert_chain: tls.cert, private_key: tls.key }], true);
}

/**
 * Channel credentials of a worker or an operator: its pair, and the job's CA. The server is checked by
 * identity, not host name: its certificate must name the coordinator (spiffe://shardwise/coordinator), so
 * the coordinator is reachable under any name (a Service, a pod IP) without reissuing its certificate,
 * and a worker's certificate, from the same CA, cannot pose as the coordinator.
 */
export function grpcChannelCredentials(tls: TlsCredentials): ChannelCredentials {
  const verify = { checkServerIdentity: checkCoordinatorIdentity };
  if (tls instanceof ReloadingTlsCredentials) {
    const provider = certificateProvider(tls);
    return experimental.createCertificateProviderChannelCredentials(provider, provider, verify);
  }
  return ChannelCredentials.createSsl(tls.ca, tls.key, tls.cert, verify);
}

function checkCoordinatorIdentity(_host: string, cert: PeerCertificate): Error | undefined {
  const identity = cert.raw ? identityOf(cert.raw) : undefined;
  if (identity?.role === 'coordinator') return undefined;
  return new Error(`expected the coordinator's certificate (${identityUri({ role: 'coordinator', name: '' })}), ` +
    `the server presented ${identity ? identityUri(identity) : 'one without a shardwise identity'}`);
}

/**
 * grpc-js's CertificateProvider over watched credentials: each listener gets the set in force right after
 * it is added (on the next tick, as grpc-js's own FileWatcherCertificateProvider does: the server adds its
 * listener before its watcher), then every set accepted later. Only valid sets are ever passed on, so
 * grpc-js never sees a half-written file.
 */
function certificateProvider(tls: ReloadingTlsCredentials): experimental.CertificateProvider {
  const subscriptions = new Map<unknown, () => void>();
  const add = <U>(listener: (update: U) => void, toUpdate: (m: TlsMaterial) => U): void => {
    subscriptions.get(listener)?.();
    subscriptions.set(listener, tls.subscribe((m) => listener(toUpdate(m))));
    process.nextTick(() => {
      if (subscriptions.has(listener)) listener(toUpdate(tls.current));
    });
  };
  const remove = (listener: unknown): void => {
    subscriptions.get(listener)?.();
    subscriptions.delete(listener);
  };
  return {
    addCaCertificateListener: (listener) => add(listener, (m) => ({ caCertificate: m.ca })),
    removeCaCertificateListener: remove,
    addIdentityCertificateListener: (listener) => add(listener, (m) => ({ certificate: m.cert, privateKey: m.key })),
    removeIdentityCertificateListener: remove,
  };
}
