import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BusEventType, deriveBusKey, EventBus } from '../common/bus';
import { CERT_FILES, readJoinToken } from '../common/security';
import { JobSpecError, loadJobSpec } from '../common/job';
import { ChildExitedError, type ClusterOptions, coordinatorHeapCapMb, LocalCluster, NatsServerMissingError, startLocalNats } from '../launcher';
import { LineLog } from './support/cluster-lines';

// The launcher's process handling, with a stand-in `shardwise` that speaks only the process contract
// (ready lines, SIGTERM, exit status): real nats-server, real child processes, no training.
const FAKE_SHARDWISE = {
  command: process.execPath,
  args: ['--import', pathToFileURL(require.resolve('tsx')).href, path.join(__dirname, 'support', 'cluster-fake-shardwise.ts')],
};
const JOB_ID = 'fake-job';

function portRefuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('launcher: local cluster process handling', function () {
  let dir: string;
  let job: string;
  let fakeLog: string;
  let log: LineLog;
  let output: LineLog;
  let cluster: LocalCluster | undefined;

  before(async function () {
    // The bus is part of what is tested; without nats-server only the --no-bus case could run.
    const probe = await startLocalNats().catch((err: unknown) => {
      if (err instanceof NatsServerMissingError) this.skip();
      throw err;
    });
    await probe.process.stop();
  });

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'shardwise-launcher-'));
    job = path.join(dir, 'job.yaml');
    writeFileSync(job, `name: ${JOB_ID}\nmodel: {architecture: small_cnn}\ntraining: {epochs: 1}\noptimizer: {learningRate: 0.01}\n`);
    fakeLog = path.join(dir, 'events.log');
    log = new LineLog();
    output = new LineLog();
  });

  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  function start(extra: Partial<ClusterOptions> = {}, env: NodeJS.ProcessEnv = {}): Promise<LocalCluster> {
    return LocalCluster.start({
      job,
      workers: 2,
      shardwise: FAKE_SHARDWISE,
      coordinatorOutput: 'prefix',
      output: output.push,
      log: log.push,
      workerReadyTimeoutMs: 30_000,
      coordinatorReadyTimeoutMs: 30_000,
      stopGraceMs: 10_000,
      ...extra,
      env: { ...process.env, FAKE_LOG: fakeLog, ...env },
    });
  }

  function busKeyOf(c: LocalCluster): Buffer {
    return deriveBusKey(readJoinToken(path.join(c.tlsDir!, CERT_FILES.joinToken)), JOB_ID);
  }

  function events(): string[] {
    return existsSync(fakeLog) ? readFileSync(fakeLog, 'utf8').trim().split('\n') : [];
  }

  /** Publishes a scale event as the coordinator would: with the coordinator's NATS user, signed with the job's key. */
  async function publishScale(c: LocalCluster, desiredWorkers: number, signingKey = busKeyOf(c)): Promise<void> {
    const bus = await EventBus.connect({ servers: c.natsUrl!, jobId: JOB_ID, name: 'test-scaler', credentials: c.natsAccess!.credentials.coordinator, signingKey });
    try {
      await bus.publish({ type: BusEventType.Scale, jobId: JOB_ID, configVersion: 0, effectiveStep: 0, desiredWorkers });
    } finally {
      await bus.close();
    }
  }

  it('starts nats-server, the coordinator on the bus, then N workers pointed at the coordinator', async () => {
    cluster = await start({ set: ['training.epochs=2'], data: '/data/cifar' });
    assert.equal(cluster.state, 'running');
    assert.equal(cluster.coordinator.runDir, '/tmp/fake run');
    assert.match(cluster.coordinator.grpc, /^127\.0\.0\.1:\d+$/);
    const natsUrl = cluster.natsUrl;
    assert.match(natsUrl ?? '', /^nats:\/\/127\.0\.0\.1:\d+$/);
    const [first, ...rest] = events();
    const files = cluster.natsAccess!.files;
    // Secure by default: every process gets the run's credentials folder, each worker its own certificate.
    const tls = cluster.tlsDir as string;
    assert.ok(['coordinator.crt', 'join-token', 'workers/worker-1.crt', 'workers/worker-2.crt'].every((f) => existsSync(path.join(tls, f))), tls);
    assert.equal(first, `coordinator started --job ${job} --nats ${natsUrl} --nats-credentials ${files.coordinator} --tls-dir ${tls} --data /data/cifar --set training.epochs=2`);
    assert.deepEqual(rest.sort(), [
      `worker-1 started --coordinator ${cluster.coordinator.grpc} --id worker-1 --tls-dir ${tls} --nats-credentials ${files.worker}`,
      `worker-2 started --coordinator ${cluster.coordinator.grpc} --id worker-2 --tls-dir ${tls} --nats-credentials ${files.worker}`,
    ]);
    assert.deepEqual(cluster.liveWorkers().map((w) => [w.id, w.state, w.ready?.id]), [
      ['worker-1', 'running', 'worker-1'],
      ['worker-2', 'running', 'worker-2'],
    ]);
    // The coordinator runs with the heap cap of the job's maxWorkers (launcher/coordinator-heap.ts), in its NODE_OPTIONS.
    const environ = readFileSync(`/proc/${cluster.coordinatorPid}/environ`, 'utf8').split('\0');
    const nodeOptions = environ.find((e) => e.startsWith('NODE_OPTIONS='));
    assert.match(nodeOptions ?? '', new RegExp(`(=| )--max-old-space-size=${coordinatorHeapCapMb(loadJobSpec(job).distributed.maxWorkers)}$`));
    // Children's lines come through with their name in front.
    await output.waitFor(/^\[worker-2\] fake worker worker-2: registered$/);
    await output.waitFor(/^\[coordinator\] shardwise coordinator ready /);
    await output.waitFor(/^\[worker-1\] worker worker-1: step 0 \(epoch 0\): /);
    assert.ok(log.matching(/run directory: \/tmp\/fake run/).length === 1, log.lines.join('\n'));
    assert.equal(log.matching(/^coordinator: grpc \S+, metrics http:\/\/127\.0\.0\.1:9\/metrics, status page http:\/\/127\.0\.0\.1:9\/ \(pid \d+\)$/).length, 1, log.lines.join('\n'));
    assert.deepEqual(output.matching(/^\[nats\].*\[INF\]/), [], "nats-server's informational lines are not forwarded");
  });

  it("workerOutput 'quiet' drops the workers' routine per-share lines and keeps the rest", async () => {
    cluster = await start({ workerOutput: 'quiet', workers: 1 });
    await output.waitFor(/^\[worker-1\] fake worker worker-1: registered$/);
    await cluster.stop();
    assert.deepEqual(output.matching(/step 0 \(epoch 0\)/), []);
  });

  it('a worker that leaves with status 0 (drained by the coordinator) is logged as gone, not as a crash', async () => {
    cluster = await start();
    process.kill(cluster.liveWorkers()[1].pid!, 'SIGUSR1');
    await log.waitFor(/^worker-2 left \(exit code 0\)$/);
    assert.deepEqual(log.matching(/not restarted/), []);
    assert.deepEqual(cluster.liveWorkers().map((w) => w.id), ['worker-1']);
  });

  it('reacts to scale events on the bus: starts workers, then drains the newest ones', async () => {
    cluster = await start();
    await publishScale(cluster, 3);
    await log.waitFor(/^worker-3 ready/);
    assert.deepEqual(cluster.liveWorkers().map((w) => w.id), ['worker-1', 'worker-2', 'worker-3']);
    await publishScale(cluster, 1);
    await Promise.all([log.waitFor(/^worker-3 left \(exit code 0\)/), log.waitFor(/^worker-2 left \(exit code 0\)/)]);
    assert.deepEqual(cluster.liveWorkers().map((w) => w.id), ['worker-1']);
    assert.deepEqual(events().filter((e) => e.endsWith('SIGTERM')).sort(), ['worker-2 SIGTERM', 'worker-3 SIGTERM']);
    assert.equal(cluster.state, 'running');
  });

  it("ignores a scale event signed without the job's join token, and logs it once", async () => {
    cluster = await start();
    const forgedKey = deriveBusKey(Buffer.from('the join token of some other job'), JOB_ID);
    await publishScale(cluster, 0, forgedKey);
    await publishScale(cluster, 4, forgedKey);
    await publishScale(cluster, 3);
    await log.waitFor(/^worker-3 ready/);
    assert.deepEqual(cluster.liveWorkers().map((w) => w.id), ['worker-1', 'worker-2', 'worker-3']);
    const dropped = log.lines.filter((l) => /^event bus: dropped a 'scale' event/.test(l));
    assert.deepEqual(dropped, ["event bus: dropped a 'scale' event (config v0) on shardwise.fake-job.events: its signature is not the job's " +
      '(the publisher does not hold the join token); further ones are not logged']);
    assert.ok(!log.lines.some((l) => /scale event: (0|4) worker/.test(l)), log.lines.join('\n'));
  });

  it('stop: workers drain first, then the coordinator, then nats-server; exits with the coordinator status', async () => {
    cluster = await start({}, { FAKE_TERM_EXIT: '3' });
    const natsPort = Number(new URL(cluster.natsUrl!).port);
    const code = await cluster.stop();
    assert.equal(code, 3);
    assert.equal(cluster.state, 'failed');
    const stops = events().filter((e) => e.endsWith('SIGTERM'));
    assert.deepEqual(stops.slice(0, 2).sort(), ['worker-1 SIGTERM', 'worker-2 SIGTERM']);
    assert.deepEqual(stops.slice(2), ['coordinator SIGTERM']);
    assert.ok(await portRefuses(natsPort), 'nats-server still accepts connections after stop');
    // A second stop is the same stop.
    assert.equal(await cluster.stop(), 3);
  });

  it('when the coordinator finishes, the workers leave on their own and the launcher exits 0', async () => {
    cluster = await start();
    process.kill(cluster.coordinatorPid!, 'SIGUSR2');
    assert.equal(await cluster.finished, 0);
    assert.equal(cluster.state, 'stopped');
    const all = events();
    assert.ok(all.includes('worker-1 left') && all.includes('worker-2 left'), all.join('\n'));
    assert.deepEqual(all.filter((e) => e.endsWith('SIGTERM')), [], 'nobody needed a SIGTERM');
  });

  it('restarts nothing on its own: a dead worker is logged and the next scale event replaces it', async () => {
    cluster = await start();
    const [first] = cluster.liveWorkers();
    process.kill(first.pid!, 'SIGKILL');
    await log.waitFor(/^worker-1 exited \(signal SIGKILL\); not restarted/);
    assert.deepEqual(cluster.liveWorkers().map((w) => w.id), ['worker-2']);
    await publishScale(cluster, 2);
    await log.waitFor(/^worker-3 ready/);
    assert.deepEqual(cluster.liveWorkers().map((w) => w.id), ['worker-2', 'worker-3']);
  });

  it('a coordinator that fails to start fails the start with its output, and nats-server is stopped', async () => {
    const err = await start({}, { FAKE_CRASH: '1' }).catch((e: unknown) => e);
    assert.ok(err instanceof ChildExitedError, `expected ChildExitedError, got ${String(err)}`);
    assert.match(err.message, /coordinator ended \(exit code 3\)/);
    assert.match(err.message, /cannot read the job spec/);
    const natsPort = Number(/nats-server: nats:\/\/127\.0\.0\.1:(\d+)/.exec(log.lines.join('\n'))?.[1]);
    assert.ok(natsPort > 0, log.lines.join('\n'));
    assert.ok(await portRefuses(natsPort), 'nats-server outlived a failed start');
    assert.deepEqual(events().filter((e) => e.startsWith('worker')), [], 'no worker starts without a coordinator');
  });

  it('a stop during the start (Ctrl-C while the coordinator loads) stops it and nats-server, starts no worker', async () => {
    const starting = LocalCluster.create({
      job,
      workers: 2,
      shardwise: FAKE_SHARDWISE,
      coordinatorOutput: 'prefix',
      output: output.push,
      log: log.push,
      env: { ...process.env, FAKE_LOG: fakeLog, FAKE_HOLD_READY: '1' },
    });
    const started = starting.start();
    await output.waitFor(/^\[coordinator\] fake coordinator: still loading$/);
    const natsPort = Number(new URL(starting.natsUrl!).port);
    assert.equal(await starting.stop(), 0);
    await assert.rejects(started, /stopped while starting/);
    assert.equal(starting.state, 'failed');
    assert.deepEqual(events().filter((e) => !e.startsWith('coordinator started')), ['coordinator SIGTERM']);
    assert.ok(await portRefuses(natsPort), 'nats-server outlived an interrupted start');
  });

  it('--no-bus: no nats-server, no --nats flag, and a warning that scale events cannot reach it', async () => {
    cluster = await start({ bus: false, workers: 1 });
    assert.equal(cluster.natsUrl, undefined);
    assert.doesNotMatch(events()[0], /--nats/);
    assert.equal(log.matching(/running without the event bus/).length, 1);
    assert.deepEqual(cluster.liveWorkers().map((w) => w.id), ['worker-1']);
  });

  it('a bad job spec fails before any process starts', async () => {
    writeFileSync(job, 'model: {architecture: small_cnn}\ntraining: {epochs: 1, batchsize: 8}\noptimizer: {learningRate: 0.01}\n');
    const err = await start().catch((e: unknown) => e);
    assert.ok(err instanceof JobSpecError, `expected JobSpecError, got ${String(err)}`);
    assert.match(err.message, /batchsize/);
    assert.deepEqual(events(), []);
    assert.deepEqual(log.lines, []);
  });
});
