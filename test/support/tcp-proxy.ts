/**
 * A loopback TCP proxy to put between a worker and the coordinator, so a test can lose a real answer:
 * `holdReplies()` withholds the server's bytes from the client (counted, never delivered; the requests still
 * go through), and `cut()` then destroys every connection. The client sees its connection broken after its
 * request was delivered, before any answer: a fault caused on the wire, not mocked.
 */
import * as net from 'node:net';

/** One proxied connection: the client's socket and the one to the target. */
interface Pipe {
  client: net.Socket;
  upstream: net.Socket;
}

/** A TCP proxy on 127.0.0.1 to one `host:port` target. */
export class TcpProxy {
  private readonly pipes = new Set<Pipe>();
  private holding = false;
  private held = 0;
  private accepted = 0;

  private constructor(private readonly server: net.Server, private readonly target: { host: string; port: number }) {
    server.on('connection', (client) => this.pipe(client));
  }

  /** Listens on a free loopback port and forwards every connection to `target` (`host:port`). */
  static async start(target: string): Promise<TcpProxy> {
    const match = /^(.+):(\d+)$/.exec(target);
    if (!match) throw new Error(`TcpProxy: expected a host:port target, got '${target}'`);
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return new TcpProxy(server, { host: match[1], port: Number(match[2]) });
  }

  /** `127.0.0.1:PORT`, the address clients dial instead of the target. */
  get address(): string {
    return `127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  /** Connections accepted so far (a client that reconnected after a cut counts again). */
  get connections(): number {
    return this.accepted;
  }

  /** From now on the target's bytes are withheld, not forwarded (until `cut`). */
  holdReplies(): void {
    this.holding = true;
  }

  /**
   * Destroys every open connection on both sides and forwards normally again afterwards (the client's
   * reconnection goes through). Returns how many of the target's bytes were withheld and so lost.
   */
  cut(): number {
    const dropped = this.held;
    for (const { client, upstream } of this.pipes) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
    this.pipes.clear();
    this.holding = false;
    this.held = 0;
    return dropped;
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private pipe(client: net.Socket): void {
    this.accepted++;
    const upstream = net.connect(this.target.port, this.target.host);
    const pipe = { client, upstream };
    this.pipes.add(pipe);
    client.on('data', (bytes) => upstream.write(bytes));
    upstream.on('data', (bytes) => {
      if (this.holding) this.held += bytes.length;
      else client.write(bytes);
    });
    // One side gone ends the other: the proxy keeps no half-open connection.
    const end = (): void => {
      this.pipes.delete(pipe);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('error', end);
      socket.on('close', end);
    }
  }
}
