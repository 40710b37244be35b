import * as net from 'node:net';

/**
 * A TCP address that accepts connections and never answers: a data plane whose exchanges wait (until their
 * timeout) rather than fail at once, as one at an address nothing listens on does.
 */
export interface SilentListener {
  address: string;
  close(): void;
}

export async function silentListener(): Promise<SilentListener> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () => {
      server.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}
