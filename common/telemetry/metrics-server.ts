import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { hostPort } from '../address';
import { ListenError } from '../errors';

/** Where and how to serve `/metrics`. */
export interface MetricsServerOptions {
  /** Address to bind; `0.0.0.0` inside a pod so Prometheus can reach it. @default '127.0.0.1' */
  host?: string;
  /** TCP port; 0 lets the OS choose (read it back from `port`). @default 0 */
  port?: number;
  /** `/healthz` answers 200 while this returns true, 503 otherwise. @default always healthy */
  isHealthy?: () => boolean;
  /**
   * More routes beside `/metrics` and `/healthz` (the coordinator's status page): answers a GET or HEAD and
   * returns true, or returns false to leave the request to the 404. @default none
   */
  routes?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
}

/** A running metrics endpoint. */
export interface MetricsServer {
  readonly host: string;
  /** The bound port (the OS's choice when asked for 0). */
  readonly port: number;
  /** `http://host:port`, without a path. */
  readonly url: string;
  /** Stops listening and drops open keep-alive connections (Prometheus keeps one open). */
  close(): Promise<void>;
}

/**
 * Serves `registry` on a small node:http server: `GET /metrics` in the registry's exposition format and
 * content type, `GET /healthz` for liveness probes. No framework: two routes do not need one, and the
 * endpoint must keep answering while the process is busy, so it does nothing but read the registry.
 */
export async function serveMetrics(registry: Registry, options: MetricsServerOptions = {}): Promise<MetricsServer> {
  const host = options.host ?? '127.0.0.1';
  const requestedPort = options.port ?? 0;
  const isHealthy = options.isHealthy ?? (() => true);

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('expected GET or HEAD\n');
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
        (err: unknown) =>
          res
            .writeHead(500, { 'Content-Type': 'text/plain' })
            .end(`collecting metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
      );
    } else if (path === '/healthz') {
      const ok = isHealthy();
      res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ok ? 'ok\n' : 'unhealthy\n');
    } else if (!options.routes?.(req, res)) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`no route ${path}; try /metrics or /healthz\n`);
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new ListenError('metrics server', hostPort(host, requestedPort), '--metrics-port', { cause: err })));
    server.listen(requestedPort, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    host,
    port,
    url: `http://${hostPort(host, port)}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
