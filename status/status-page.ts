import type * as http from 'node:http';
import { StatusSource, type StatusSourceOptions } from './status-source';
import { statusRoutes } from './status-routes';

/** The coordinator's live status page: its source and the routes that serve it. */
export interface StatusPage {
  /** For `serveMetrics({ routes })`: the page at `/`, `/status.json` and `/events` beside `/metrics`. */
  readonly routes: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
  /** The source, to refresh or read directly. */
  readonly source: StatusSource;
  /** Stops the source's timer; the metrics server's close ends open `/events` streams. */
  close(): void;
}

/**
 * Creates the status page over a running job. Create it before the job records anything (records already
 * in `metrics.jsonl` are taken as history from before a resume). Throws StatusAssetsError when the browser
 * files are missing.
 */
export function createStatusPage(options: StatusSourceOptions): StatusPage {
  const source = new StatusSource(options);
  try {
    return { routes: statusRoutes(source), source, close: () => source.close() };
  } catch (err) {
    source.close();
    throw err;
  }
}

/** The page's address on a metrics server whose endpoint is `metricsUrl` (`http://h:p/metrics` -> `http://h:p/`). */
export function statusPageUrl(metricsUrl: string): string {
  return new URL('/', metricsUrl).href;
}
