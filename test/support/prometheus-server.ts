import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { getFreePort } from './free-port';
import { ReadyProcess } from './ready-process';

/** The Debian package providing the binary; `make test` installs it (as root) with scripts/ensure-deb.sh. */
const INSTALL_HINT = 'scripts/ensure-deb.sh prometheus:prometheus (as root), or apt-get install prometheus';
const HOST = '127.0.0.1';
/** The file_sd targets file inside the server's folder. */
const TARGETS_FILE = 'targets.json';

/** One sample of an instant-vector query result. */
export interface PromSample {
  metric: Record<string, string>;
  /** The value as Prometheus writes it (a string: "7", "0.5", "NaN"). */
  value: string;
}

/** Targets sharing labels, in Prometheus' file_sd format: how a pod's `namespace` and `pod` labels arrive. */
export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

/**
 * A real Prometheus scraping the given targets every second, with its data in a temporary folder, so a
 * test can check that what we expose is what Prometheus actually ingests. Targets are static, or come
 * from a file (`fileSd`) that {@link PrometheusServer.setTargetGroups} rewrites as processes come and go.
 */
export class PrometheusServer {
  private constructor(
    private readonly proc: ReadyProcess,
    private readonly dir: string,
    /** `http://127.0.0.1:<port>` of Prometheus's web API. */
    readonly url: string,
  ) {}

  /** Writes a config scraping `targets` (`host:port`) as job `jobName`, starts Prometheus, waits until ready. */
  static async start(options: { targets?: readonly string[]; fileSd?: boolean; jobName: string }): Promise<PrometheusServer> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'shardwise-prometheus-'));
    const discovery = options.fileSd
      ? ['    file_sd_configs:', `      - files: [${JSON.stringify(path.join(dir, TARGETS_FILE))}]`, '        refresh_interval: 1s']
      : ['    static_configs:', `      - targets: ${JSON.stringify(options.targets ?? [])}`];
    const config = [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      'scrape_configs:',
      `  - job_name: ${JSON.stringify(options.jobName)}`,
      ...discovery,
      '',
    ].join('\n');
    const configPath = path.join(dir, 'prometheus.yml');
    await fs.writeFile(configPath, config);
    if (options.fileSd) await fs.writeFile(path.join(dir, TARGETS_FILE), '[]');
    const port = await getFreePort(HOST);
    try {
      const proc = await ReadyProcess.start({
        command: 'prometheus',
        // Only what is needed: the config, a throw-away TSDB, and the web address on loopback.
        args: [
          `--config.file=${configPath}`,
          `--storage.tsdb.path=${path.join(dir, 'data')}`,
          `--web.listen-address=${HOST}:${port}`,
        ],
        readyPattern: /Server is ready to receive web requests/,
        installHint: INSTALL_HINT,
      });
      return new PrometheusServer(proc, dir, `http://${HOST}:${port}`);
    } catch (err) {
      await fs.rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Replaces the scraped targets (a `fileSd` server); written then renamed, so Prometheus never reads half. */
  async setTargetGroups(groups: readonly TargetGroup[]): Promise<void> {
    const tmp = path.join(this.dir, `${TARGETS_FILE}.tmp`);
    await fs.writeFile(tmp, JSON.stringify(groups));
    await fs.rename(tmp, path.join(this.dir, TARGETS_FILE));
  }

  /** Prometheus's recent log, for failure messages. */
  get log(): string {
    return this.proc.log;
  }

  /** Runs an instant query through `/api/v1/query` and returns the vector's samples. */
  async query(promql: string): Promise<PromSample[]> {
    const res = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
    };
    if (body.status !== 'success' || body.data?.resultType !== 'vector') {
      throw new Error(`query ${promql}: expected a vector result, got ${JSON.stringify(body).slice(0, 300)}`);
    }
    return body.data.result.map((r) => ({ metric: r.metric, value: r.value[1] }));
  }

  /** Stops Prometheus (SIGTERM, awaiting exit) and removes its data. */
  async stop(): Promise<void> {
    await this.proc.stop();
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
