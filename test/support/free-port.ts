import * as net from 'node:net';

/**
 * Asks the OS for a free TCP port on `host` (listen on port 0, read the port, close). Another process
 * could take it before the caller binds it; callers that start servers retry with a new port on
 * "address in use" rather than assume it cannot happen.
 */
export function getFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`expected a TCP address from listen(0) on ${host}, got ${String(address)}`));
        return;
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)));
    });
  });
}
