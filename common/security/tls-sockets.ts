import { once } from 'node:events';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import { type Identity, identityOf, identityUri } from './identity';
import { subscribeToRotation } from './reloading-credentials';
import type { TlsCredentials, TlsMaterial } from './tls-credentials';

/*
 * Mutual TLS for raw TCP (the allreduce data plane): both ends present a certificate from the job's CA
 * and both are checked. Who the other end may be (a member of the reduction) is the caller's rule; these
 * helpers only say who it is. With watched credentials (ReloadingTlsCredentials) a server takes a rotated
 * set with `setSecureContext` and a client reads the set in force at each connect: new connections use
 * the new certificate, open ones go on.
 */

/**
 * TLS 1.3 only (both ends are shardwise), AES-128-GCM first: with AES-NI it is the cheapest AEAD per byte,
 * and the data plane encrypts every gradient byte (Node's default order picks AES-256-GCM). The other two
 * suites stay so a peer without AES-NI can still prefer ChaCha20. Node takes TLS 1.3 suites in `ciphers`.
 */
export const DATA_PLANE_CIPHERSUITES = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384';

/** The secure-context part of the options: the set in force and the cipher choice. */
function contextOptions(material: TlsMaterial): tls.SecureContextOptions {
  return { ca: material.ca, cert: material.cert, key: material.key, minVersion: 'TLSv1.3', ciphers: DATA_PLANE_CIPHERSUITES };
}

/** A TLS connection whose peer proved a shardwise identity. */
export interface AuthenticatedSocket {
  socket: tls.TLSSocket;
  identity: Identity;
}

function peerIdentity(socket: tls.TLSSocket): Identity | undefined {
  const cert = socket.getPeerX509Certificate();
  return cert ? identityOf(cert) : undefined;
}

/**
 * A TLS server requiring a client certificate from `credentials.ca`. `onSocket` gets each connection whose
 * handshake succeeded and whose certificate is from the CA and names an identity; `onRefused` is told why
 * any other was cut (a plaintext client, a certificate from another CA, none at all), with its address.
 */
export function createMutualTlsServer(
  credentials: TlsCredentials,
  onSocket: (connection: AuthenticatedSocket) => void,
  onRefused: (why: string) => void,
): tls.Server {
  const server = tls.createServer({
    ...contextOptions(credentials),
    requestCert: true,
    // Verified below instead of by OpenSSL mid-handshake: a refused certificate is then reported with its
    // reason and the peer's address (OpenSSL's own refusal reaches Node as a bare 'socket hang up').
    // No byte is read from a connection before the check.
    rejectUnauthorized: false,
    // A peer that connects and never completes a handshake is cut, like one that never says hello.
    handshakeTimeout: 10_000,
  });
  const unsubscribe = subscribeToRotation(credentials, (material) => server.setSecureContext(contextOptions(material)));
  server.once('close', unsubscribe);
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const identity = socket.authorized ? peerIdentity(socket) : undefined;
    if (identity) {
      onSocket({ socket, identity });
      return;
    }
    const why = socket.authorized ? 'its certificate names no shardwise identity'
      : `its certificate is not from the job's CA (${String(socket.authorizationError)})`;
    onRefused(`${socket.remoteAddress}:${socket.remotePort}: ${why}`);
    socket.destroy();
  });
  server.on('tlsClientError', (err: Error & { reason?: string }, socket: tls.TLSSocket) => {
    // OpenSSL's reason ('wrong version number': a plaintext client; 'certificate unknown') reads better than its error stack.
    onRefused(`${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}: TLS handshake failed (${err.reason ?? err.message.trim()})`);
  });
  return server;
}

/**
 * Connects to `host:port` with this process's certificate and resolves once the handshake is done and the
 * server's certificate is from the CA and names `expected`; otherwise the socket is closed and the error
 * says what the server presented. `onread` (a ChannelReadBridge's) has the TLSSocket decrypt into the
 * reader's buffers instead of emitting a new Buffer per 16 KB record.
 */
export async function connectMutualTls(host: string, port: number, credentials: TlsCredentials, expected: Identity,
  onread?: net.OnReadOpts): Promise<tls.TLSSocket> {
  // `onread` reaches the TLSSocket (Node passes it on when tls.connect makes the socket); @types/node omits it.
  const options: tls.ConnectionOptions & { onread?: net.OnReadOpts } = {
    host,
    port,
    onread,
    ...contextOptions(credentials),
    // The peer is checked by the identity in its certificate, not by a host name (pods move).
    checkServerIdentity: () => undefined,
  };
  const socket = tls.connect(options);
  try {
    await once(socket, 'secureConnect');
  } catch (err) {
    socket.destroy();
    throw err;
  }
  const found = peerIdentity(socket);
  if (!found || found.role !== expected.role || found.name !== expected.name) {
    socket.destroy();
    throw new Error(`expected ${identityUri(expected)} at ${host}:${port}, its certificate names ${found ? identityUri(found) : 'no shardwise identity'}`);
  }
  return socket;
}
