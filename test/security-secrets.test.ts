import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { type BusEvent, deriveBusKey, EventBus, makeDevCertificates, readJoinToken } from '../common';
import { type LocalNats, NatsServerMissingError, startLocalNats, WORKER_READY_PATTERN, workerReadyFrom, type WorkerReady } from '../launcher';
import { ClusterHarness, type CoordinatorProc } from './support/cluster';
import { finishAndCheck, localReference } from './support/cluster-checks';
import { testJobYaml } from './support/cluster-data';
import { pollUntil } from './support/deadline';

const JOB = 'secrets-job';
/** Pace of the forged flood: fast enough to beat the genuine events, slow enough to leave the CPUs to training. */
const FLOOD_PERIOD_MS = 50;

/** Every secret of the job as the text it could leak as: token, NATS passwords, bus key, private keys. */
function secretsOf(certsDir: string, nats: LocalNats): Map<string, string> {
  const secrets = new Map<string, string>();
  const token = readJoinToken(path.join(certsDir, 'join-token'));
  secrets.set('the join token', token.toString());
  for (const [role, c] of Object.entries(nats.access!.credentials)) secrets.set(`the ${role}'s NATS password`, c.password);
  const key = deriveBusKey(token, JOB);
  for (const encoding of ['base64', 'base64url', 'hex'] as const) secrets.set(`the bus key (${encoding})`, key.toString(encoding));
  secrets.set('a PEM private key header', 'PRIVATE KEY');
  const keyFiles = fs.readdirSync(certsDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.key'));
  assert.ok(keyFiles.length >= 4, `expected the CA's, the coordinator's and the workers' keys, found ${keyFiles.join(', ')}`);
  for (const file of keyFiles) {
    const body = fs.readFileSync(path.join(certsDir, file), 'utf8').split('\n').filter((l) => l.length >= 32 && !l.startsWith('-----'));
    body.forEach((line, i) => secrets.set(`line ${i + 1} of ${file}`, line));
  }
  return secrets;
}

/** The text at `url`; for a server-sent-events stream, up to its first complete message. */
async function fetchText(url: string): Promise<string> {
  const abort = new AbortController();
  const res = await fetch(url, { signal: abort.signal });
  assert.equal(res.status, 200, `GET ${url}`);
  if (!res.headers.get('content-type')?.startsWith('text/event-stream')) return res.text();
  const reader = res.body!.getReader();
  let text = '';
  while (!text.includes('\n\n')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString('utf8');
  }
  abort.abort();
  return text;
}

function assertNoSecret(where: string, text: string, secrets: Map<string, string>): void {
  for (const [what, secret] of secrets) assert.ok(!text.includes(secret), `${where} contains ${what}`);
}

// A secured job with real processes: mutual TLS, a join token, a NATS server with per-role users. Someone
// who holds the coordinator's NATS password but not the join token floods the job with forged `freeze`
// events at the coming config versions; the workers drop and count them, take every genuine event, and the
// job ends with the single-process trainer's weights. (The session stream pushes each new configuration
// with the order that needs it, so even an accepted forgery would rarely reach a step: the bus-level proof
// that a forgery is not applied is in bus-signing.test.ts; here it is the whole job that must come out
// unchanged.) Meanwhile every HTTP endpoint the processes serve is read, and none holds a secret.
describe('security: /metrics and the status page expose no secret; forged bus events do not touch training', function () {
  this.timeout(300_000);
  let harness: ClusterHarness;
  let nats: LocalNats;
  let forger: EventBus | undefined;

  before(async function () {
    nats = await startLocalNats({ secureJob: JOB }).catch((err: unknown) => {
      if (err instanceof NatsServerMissingError) this.skip();
      throw err;
    });
    harness = await ClusterHarness.create();
  });
  after(async () => {
    await forger?.close();
    await harness?.dispose();
    await nats?.process.stop();
  });

  it('reads every endpoint of a secure job, finds no secret, and the forged freezes change nothing', async () => {
    const certsDir = path.join(harness.dir, 'certs');
    await makeDevCertificates({ outDir: certsDir, workerIds: ['worker-1', 'worker-2', 'worker-3'] });
    const reference = localReference('test-job', testJobYaml('reference'), harness.dataDir);
    const files = nats.access!.files;
    const coordinator: CoordinatorProc = await harness.startCoordinator({
      // minWorkers 3 with 2 workers started: the job waits, so every endpoint is read from live processes
      // however slow this machine is; the third worker then lets it train.
      job: harness.writeJob(JOB, testJobYaml(JOB, { minWorkers: 3 })),
      bus: false,
      args: ['--nats', nats.url, '--nats-credentials', files.coordinator, '--tls-dir', certsDir],
    });
    const launch = (id: string) => harness.launchWorker(coordinator.ready.grpc, id, ['--tls-dir', certsDir, '--nats-credentials', files.worker]);
    const workers = ['worker-1', 'worker-2'].map(launch);
    const ready: WorkerReady[] = await Promise.all(workers.map(async (w) => workerReadyFrom(await w.waitForLine(WORKER_READY_PATTERN, { timeoutMs: 90_000 }))));
    await Promise.all(workers.map((w) => w.waitForLine(/event bus: listening on shardwise\.secrets-job\.events/, { timeoutMs: 60_000 })));

    forger = await EventBus.connect({ servers: nats.url, jobId: JOB, name: 'forger', credentials: nats.access!.credentials.coordinator,
      signingKey: deriveBusKey(Buffer.from('a join token of some other job'), JOB) });
    let flooding = true;
    const flood = (async () => {
      for (let sent = 0; flooding; sent++) {
        const forged: BusEvent = { type: 'freeze', paramGroup: 'backbone', jobId: JOB, configVersion: 1 + (sent % 3), effectiveStep: 0 };
        await forger!.publish(forged).catch(() => undefined);
        await delay(FLOOD_PERIOD_MS);
      }
    })();

    try {
      const badSignature = /^shardwise_worker_bus_unverified_events_total\{reason="bad-signature"\} (\d+)$/m;
      await pollUntil(async () => {
        const texts = await Promise.all(ready.map((r) => fetchText(r.metrics)));
        return texts.every((t) => Number(badSignature.exec(t)?.[1] ?? 0) > 0) ? true : undefined;
      }, { timeoutMs: 60_000, intervalMs: 200, what: 'both workers to count forged events as bad-signature' });

      const secrets = secretsOf(certsDir, nats);
      const base = new URL(coordinator.ready.metrics);
      const coordinatorPaths = ['/metrics', '/healthz', '/', '/index.html', '/status/app.js', '/status/chart.js', '/status/style.css',
        '/status/favicon.svg', '/status.json', '/events'];
      for (const p of coordinatorPaths) assertNoSecret(`the coordinator's ${p}`, await fetchText(new URL(p, base).href), secrets);
      for (const r of ready) {
        for (const p of ['/metrics', '/healthz']) assertNoSecret(`${r.id}'s ${p}`, await fetchText(new URL(p, r.metrics).href), secrets);
      }

      const third = launch('worker-3');
      await finishAndCheck(harness, () => harness.awaitFinished(coordinator, [...workers, third].map((child) => ({ child }))), coordinator.ready.runDir,
        await reference, 'a secure job flooded with forged freezes');
      for (const child of [coordinator.child, ...workers, third]) assertNoSecret(`${child.name}'s output`, child.lines().join('\n'), secrets);
      // The coordinator's own events (job state, the unfreeze and learning-rate change of epoch 1, often
      // after the session stream already pushed that configuration) all verified: the one line is the forgery.
      for (const w of workers) {
        const logged = w.lines().filter((l) => /shardwise_worker_bus_unverified_events_total/.test(l));
        assert.equal(logged.length, 1, `${w.name} logs the forgery once, and nothing else as unverified:\n${logged.join('\n')}`);
        assert.match(logged[0], /dropped a 'freeze' event \(config v\d\) .*signature is not the job's.*reason="bad-signature"/);
      }
    } finally {
      flooding = false;
      await flood;
    }
  });
});
