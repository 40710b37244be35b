import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { encodeCifar10Records } from '../common/data';
import { Rng } from '../common/random';
import { withDeadline } from './support/deadline';
import { getFreePort } from './support/free-port';
import { NatsServer } from './support/nats-server';

const SHARDWISE = path.resolve(__dirname, '../bin/shardwise');
/** Starting a process (tsx, tfjs, the model) on a loaded 2-core machine. */
const START_MS = 90_000;
/** The whole tiny job. */
const JOB_MS = 150_000;
const WORKER_READY = /^shardwise worker ready id=(\S+) coordinator=(\S+) metrics=(\S+)$/m;
const COORDINATOR_READY = /^shardwise coordinator ready grpc=(\S+) metrics=(\S+) run=(.+)$/m;
const COORDINATOR_DONE = /^shardwise coordinator done run=(.+)$/m;

/** A `bin/shardwise` child whose whole output is kept, so the test can wait for a line and show it on failure. */
class Proc {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private readonly listeners = new Set<() => void>();

  constructor(readonly name: string, args: string[]) {
    this.child = spawn(SHARDWISE, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const append = (chunk: Buffer): void => {
      this.output += chunk.toString('utf8');
      for (const l of this.listeners) l();
    };
    this.child.stdout?.on('data', append);
    this.child.stderr?.on('data', append);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      for (const l of this.listeners) l();
      resolve({ code, signal });
    }));
  }

  /** Resolves with the first match of `pattern` in the output; rejects if the process exits first or time runs out. */
  waitFor(pattern: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
    let exited = false;
    void this.exited.then(() => (exited = true));
    const found = new Promise<RegExpExecArray>((resolve, reject) => {
      const check = (): void => {
        const m = pattern.exec(this.output);
        if (m) {
          this.listeners.delete(check);
          resolve(m);
        } else if (exited || this.child.exitCode !== null) {
          this.listeners.delete(check);
          reject(new Error(`${this.name} exited before ${what}; output:\n${this.tail()}`));
        }
      };
      this.listeners.add(check);
      check();
    });
    return withDeadline(found, timeoutMs, `${this.name}: ${what}; output so far:\n${this.tail()}`);
  }

  async exitCode(timeoutMs: number): Promise<number | null> {
    const { code, signal } = await withDeadline(this.exited, timeoutMs, `${this.name} to exit; output:\n${this.tail()}`);
    return signal ? -1 : code;
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  tail(): string {
    return this.output.slice(-4000);
  }
}

function randomCifar(count: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const images = Uint8Array.from({ length: count * 3072 }, () => rng.int(256));
  const labels = Uint8Array.from({ length: count }, (_, i) => i % 10);
  return encodeCifar10Records({ images, labels, count });
}

/** metrics.jsonl of a run as parsed records. */
function records(runDir: string): Array<Record<string, unknown>> {
  const file = path.join(runDir, 'metrics.jsonl');
  assert.ok(existsSync(file), `${file} exists`);
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('worker end to end: real coordinator and worker processes', function () {
  this.timeout(JOB_MS + 2 * START_MS);
  let dir: string;
  let nats: NatsServer;
  const procs: Proc[] = [];

  function start(name: string, args: string[]): Proc {
    const p = new Proc(name, args);
    procs.push(p);
    return p;
  }

  function coordinator(port: number, job: string): Proc {
    return start('coordinator', ['coordinator', '--job', job, '--data', path.join(dir, 'cifar'), '--runs-dir', path.join(dir, 'runs'),
      '--port', String(port), '--nats', nats.url, '--backend', 'wasm']);
  }

  function worker(id: string, port: number): Proc {
    return start(id, ['worker', '--coordinator', `127.0.0.1:${port}`, '--id', id, '--backend', 'wasm']);
  }

  /** A 2-epoch job of the small CNN on 80 images: 3 steps of 2 micro-batches per epoch, an evaluation pass each. */
  /** `minWorkers`: training starts only once that many workers are in. */
  function writeJob(name: string, minWorkers = 1): string {
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(file, [
      `name: ${name}`,
      'seed: 3',
      'data: { valFraction: 0.25 }',
      'model: { architecture: small_cnn, head: seed, headUnits: 8, dropout: 0.2 }',
      'training: { epochs: 2, batchSize: 20, microBatchSize: 10, evalBatchSize: 10 }',
      'optimizer: { type: adam, learningRate: 0.003 }',
      'freeze: { backboneEpochs: 1 }',
      `distributed: { heartbeatIntervalMs: 200, leaseMs: 5000, hashEverySteps: 1, minWorkers: ${minWorkers} }`,
      '',
    ].join('\n'));
    return file;
  }

  before(async function () {
    dir = mkdtempSync(path.join(tmpdir(), 'shardwise-worker-e2e-'));
    mkdirSync(path.join(dir, 'cifar'));
    writeFileSync(path.join(dir, 'cifar', 'data_batch_1.bin'), randomCifar(80, 1));
    nats = await NatsServer.start();
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed' || process.env.SHARDWISE_TEST_VERBOSE === '1') for (const p of procs) process.stderr.write(`\n--- ${p.name} ---\n${p.tail()}\n`);
    for (const p of procs.splice(0)) p.kill();
  });

  after(async () => {
    await nats?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a worker started before its coordinator waits for it; two workers train the job to the end and exit 0', async () => {
    const startedAt = Date.now();
    const port = await getFreePort();
    const metricsPort = await getFreePort();
    const early = start('w-early', ['worker', '--coordinator', `127.0.0.1:${port}`, '--id', 'w-early', '--backend', 'wasm',
      '--metrics-port', String(metricsPort)]);
    await early.waitFor(/Register: UNAVAILABLE; retrying/, START_MS, 'the worker to find no coordinator and retry');
    // Serving /metrics while it waits: a probe sees a live process, not a hung one.
    const scrape = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(scrape.status, 200);
    assert.match(await scrape.text(), /^shardwise_worker_shares_total 0$/m);
    // Both must train: with minWorkers 1 the late worker could take every step while the early one backs off.
    const coord = coordinator(port, writeJob('e2e-basic', 2));
    await coord.waitFor(COORDINATOR_READY, START_MS, 'the coordinator ready line');
    const late = worker('w-late', port);
    const [readyEarly] = await Promise.all([early.waitFor(WORKER_READY, START_MS, 'the ready line'), late.waitFor(WORKER_READY, START_MS, 'the ready line')]);
    assert.deepEqual(readyEarly.slice(1), ['w-early', `127.0.0.1:${port}`, `http://127.0.0.1:${metricsPort}/metrics`]);

    assert.equal(await coord.exitCode(JOB_MS), 0, 'the coordinator finished the job');
    assert.equal(await early.exitCode(30_000), 0);
    assert.equal(await late.exitCode(30_000), 0);
    const runDir = (COORDINATOR_DONE.exec(coord.output) as RegExpExecArray)[1];
    for (const w of [early, late]) {
      const m = /job-finished: (\d+) training and (\d+) evaluation shares accepted/.exec(w.output);
      assert.ok(m, `${w.name} says it finished with the job`);
      assert.ok(Number(m[1]) > 0, `${w.name} computed training shares`);
      assert.match(w.output, /the coordinator says stop \(the job is finished\)/);
      assert.doesNotMatch(w.output, /tensor leak/, 'the tensor count stayed flat from share to share');
      // Without --log-steps: a progress line for the first share (then one every 10 s), no line per share.
      assert.match(w.output, /: step \d+ \(epoch 0\): 1 share, \d+ samples, mean loss \d+\.\d{4}, \d+\.\d ms compute per share/);
      assert.doesNotMatch(w.output, /computing micro-batches|reducing with members|step \d+ \(epoch \d+\): \d+\/\d+ micro-batches/);
    }
    const recs = records(runDir);
    const reports = recs.filter((r) => r.type === 'epoch-report');
    assert.deepEqual(reports.map((r) => [r.epoch, r.exactlyOnce]), [[0, true], [1, true]]);
    // Each step record carries when the coordinator recorded it (the bench's step clock reads these).
    const times = recs.filter((r) => r.type === 'step').map((r) => r.time);
    assert.ok(times.length > 0 && times.every((t, k) => typeof t === 'number' && t >= startedAt && t <= Date.now() &&
      (k === 0 || t >= (times[k - 1] as number))), `step times in order within the test: ${JSON.stringify(times)}`);
    const hashes = recs.filter((r) => r.type === 'replica-hash');
    assert.ok(hashes.length >= 6, `replica hashes compared every step (${hashes.length})`);
    assert.ok(hashes.every((r) => r.agree === true), 'every replica held the coordinator\'s exact weights');
    assert.ok(hashes.some((r) => Object.keys(r.workers as object).length === 2), 'both workers reported hashes in one step');
  });

  it('a coordinator that never comes: the worker gives up after --retry-limit with a message that says so', async () => {
    const port = await getFreePort();
    const lonely = start('w-lonely', ['worker', '--coordinator', `127.0.0.1:${port}`, '--retry-limit', '1', '--backend', 'wasm']);
    assert.equal(await lonely.exitCode(START_MS), 2);
    assert.match(lonely.output, new RegExp(`shardwise: coordinator 127\\.0\\.0\\.1:${port} unreachable: Coordinator/Register kept failing for \\d+ s`));
    assert.doesNotMatch(lonely.output, /shardwise worker ready/);
  });

  it('SIGTERM drains a worker: it pushes its share, leaves and exits 0; the other finishes the job', async () => {
    const port = await getFreePort();
    const coord = coordinator(port, writeJob('e2e-drain'));
    await coord.waitFor(COORDINATOR_READY, START_MS, 'the coordinator ready line');
    const stays = worker('w-stays', port);
    const goes = worker('w-goes', port);
    await goes.waitFor(/step \d+ \(epoch \d\): /, START_MS + 60_000, 'its first accepted share');
    goes.signal('SIGTERM');
    assert.equal(await goes.exitCode(60_000), 0);
    assert.match(goes.output, /draining \(SIGTERM received\)/);
    assert.match(goes.output, /drained: \d+ training/);
    assert.equal(await coord.exitCode(JOB_MS), 0);
    assert.equal(await stays.exitCode(30_000), 0);
    const runDir = (COORDINATOR_DONE.exec(coord.output) as RegExpExecArray)[1];
    const reports = records(runDir).filter((r) => r.type === 'epoch-report');
    assert.deepEqual(reports.map((r) => r.exactlyOnce), [true, true], 'no sample lost or counted twice across the drain');
  });
});
