import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as path from 'node:path';
import { StatusAssetsError, StatusQueryError } from './errors';
import type { StatusSource } from './status-source';
import type { StatusCursor, StatusSnapshot } from './status-types';

/** The browser files, by URL path, with their content types. */
const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/status/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/status/chart.js': { file: 'chart.js', type: 'text/javascript; charset=utf-8' },
  '/status/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
  '/status/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
};

/** Open `/events` streams at most; more are answered 503, so forgotten tabs cannot pile up on the coordinator. */
export const MAX_EVENT_STREAMS = 32;

/** Where the browser files live: beside this module, so a compiled copy finds them the same way. */
export const STATUS_ASSETS_DIR = path.join(__dirname, 'assets');

/**
 * Everything comes from this server: no CDN, no inline script, no other origin. The page works offline,
 * and a job name with markup in it cannot run as script.
 */
const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

/** Reads the browser files once; a missing one is an error at start, not a blank page later. */
function loadAssets(dir: string): Map<string, { body: Buffer; type: string }> {
  const files = [...new Set(Object.values(ASSETS).map((a) => a.file))];
  const missing = files.filter((f) => !fs.existsSync(path.join(dir, f)));
  if (missing.length > 0) throw new StatusAssetsError(dir, missing);
  const bodies = new Map(files.map((f) => [f, fs.readFileSync(path.join(dir, f))]));
  return new Map(Object.entries(ASSETS).map(([route, a]) => [route, { body: bodies.get(a.file)!, type: a.type }]));
}

/** The cursor a client sends as `?steps=&epochs=&events=` (each defaults to 0: send everything). */
export function parseCursor(query: URLSearchParams): StatusCursor {
  const read = (name: keyof StatusCursor): number => {
    const raw = query.get(name);
    if (raw === null || raw === '') return 0;
    if (!/^\d{1,9}$/.test(raw)) throw new StatusQueryError(name, raw);
    return Number(raw);
  };
  return { steps: read('steps'), epochs: read('epochs'), events: read('events') };
}

/** The cursor after a client received `s`. */
function advance(s: StatusSnapshot): StatusCursor {
  return {
    steps: s.steps.from + s.steps.items.length,
    epochs: s.epochs.from + s.epochs.items.length,
    events: s.events.from + s.events.items.length,
  };
}

/**
 * The status page's HTTP routes, for the metrics server's `routes` option: the page and its two files,
 * `/status.json` (a snapshot from a cursor) and `/events` (server-sent events: a snapshot at once, then the
 * changes after each refresh of the source). Returns a handler that answers true for its own paths.
 */
export function statusRoutes(source: StatusSource, assetsDir = STATUS_ASSETS_DIR): (req: http.IncomingMessage, res: http.ServerResponse) => boolean {
  const assets = loadAssets(assetsDir);
  let streams = 0;
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://status.invalid');
    const asset = assets.get(url.pathname);
    if (asset) {
      res.writeHead(200, { 'Content-Type': asset.type, ...SECURITY_HEADERS }).end(asset.body);
      return true;
    }
    if (url.pathname !== '/status.json' && url.pathname !== '/events') return false;
    let cursor: StatusCursor;
    try {
      cursor = parseCursor(url.searchParams);
    } catch (err) {
      res.writeHead(400, { 'Content-Type': 'text/plain', ...SECURITY_HEADERS }).end(`${(err as Error).message}\n`);
      return true;
    }
    if (url.pathname === '/status.json') {
      source.snapshot(cursor).then(
        (s) => res.writeHead(200, { 'Content-Type': 'application/json', ...SECURITY_HEADERS }).end(JSON.stringify(s)),
        (err: unknown) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`status failed: ${(err as Error).message}\n`),
      );
    } else if (streams >= MAX_EVENT_STREAMS) {
      res.writeHead(503, { 'Content-Type': 'text/plain', 'Retry-After': '5', ...SECURITY_HEADERS })
        .end(`expected at most ${MAX_EVENT_STREAMS} open /events streams, ${streams} are open; close a page or poll /status.json\n`);
    } else {
      streams++;
      res.on('close', () => streams--);
      streamEvents(source, cursor, req, res);
    }
    return true;
  };
}

/** One SSE client: sends from its cursor after each refresh, one message at a time, until it goes away. */
function streamEvents(source: StatusSource, start: StatusCursor, req: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', Connection: 'keep-alive', ...SECURITY_HEADERS });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  let cursor = start;
  let sending = false;
  let again = false;
  const send = async (): Promise<void> => {
    if (sending) {
      again = true;
      return;
    }
    sending = true;
    try {
      do {
        again = false;
        const snapshot = await source.snapshot(cursor);
        if (res.destroyed) return;
        cursor = advance(snapshot);
        res.write(`data: ${JSON.stringify(snapshot)}\n\n`);
      } while (again);
    } catch (err) {
      res.write(`event: failure\ndata: ${JSON.stringify((err as Error).message)}\n\n`);
    } finally {
      sending = false;
    }
  };
  const unsubscribe = source.subscribe(() => void send());
  res.on('close', unsubscribe);
  void send();
}
