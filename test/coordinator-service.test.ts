import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GrpcStatus, initBackend, type JobSpec, parseJobSpec, readMetrics, RpcError, unaryCall, type WireTensor } from '../common';
import { type RunningCoordinator, startCoordinator } from '../coordinator';
import { type GradientHeader, PROTOCOL_VERSION, StepKind, type StepAssignment, UpdateKind } from '../proto';
import { FakeWorker, writeTinyCifar } from './coordinator-fake-worker';
import { withDeadline } from './support/deadline';
import { silentListener } from './support/silent-listener';

/** Awaits a call that must be refused with `code` and a message matching `pattern`. */
async function refused(call: Promise<unknown>, code: number, pattern: RegExp): Promise<RpcError> {
  let error: unknown;
  try {
    await call;
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof RpcError, `expected the call to be refused, got ${error === undefined ? 'success' : String(error)}`);
  assert.equal(error.codeName, GrpcStatus[code], `status of: ${error.details}`);
  assert.match(error.details, pattern);
  return error;
}

/** A metric's value from the coordinator's /metrics (0 when absent). */
async function metric(c: RunningCoordinator, name: string): Promise<number> {
  const text = await (await fetch(c.metricsUrl)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

function replace(tensors: WireTensor[], name: string, make: (t: WireTensor) => WireTensor): WireTensor[] {
  assert.ok(tensors.some((t) => t.name === name), `the share has no tensor ${name}`);
  return tensors.map((t) => (t.name === name ? make(t) : t));
}

const ids = (a: StepAssignment): number[] => a.microBatches.map((m) => m.id);

describe('coordinator service: bad input is refused, nothing is lost', function () {
  this.timeout(60_000);
  let dataDir: string;
  let runsDir: string;
  let coordinator: RunningCoordinator | undefined;
  let workers: FakeWorker[] = [];

  function spec(distributed: Record<string, number | boolean> = {}): JobSpec {
    return parseJobSpec(`
name: service
seed: 1
data: { dir: ${JSON.stringify(dataDir)}, limit: 64, valFraction: 0.15, augment: { rotationDeg: 0 } }
model: { architecture: small_cnn }
training: { epochs: 1, batchSize: 16, microBatchSize: 4, evalBatchSize: 8 }
optimizer: { learningRate: 0.01 }
output: { runsDir: ${JSON.stringify(runsDir)} }
distributed: ${JSON.stringify({ leaseMs: 60000, stepDeadlineMs: 60000, ...distributed })}
`);
  }

  async function start(distributed: Record<string, number | boolean> = {}): Promise<RunningCoordinator> {
    coordinator = await startCoordinator({ spec: spec(distributed), log: process.env.COORD_LOG ? console.log : () => undefined, stopGraceMs: 2000, drainGraceMs: 100, progressStream: fs.createWriteStream('/dev/null') });
    return coordinator;
  }

  function worker(): FakeWorker {
    const w = new FakeWorker((coordinator as RunningCoordinator).grpcAddress);
    workers.push(w);
    return w;
  }

  /** The step is complete and the job moved on: the next training assignment of each worker is for `step`. */
  async function nextStepIs(step: number, ...ws: FakeWorker[]): Promise<void> {
    await withDeadline(Promise.all(ws.map(async (w) => {
      const a = await w.pullUntil(StepKind.TRAIN);
      assert.equal(a.globalStep, step, 'the next training step');
      await w.train(a);
    })), 20_000, `step ${step}`);
  }

  before(async () => {
    await initBackend({ prefer: 'wasm', log: () => undefined });
    dataDir = writeTinyCifar(64, 5);
    runsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-coordinator-service-'));
  });
  afterEach(async () => {
    workers.forEach((w) => w.close());
    workers = [];
    await coordinator?.close();
    coordinator = undefined;
  });
  after(() => {
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(runsDir, { recursive: true, force: true });
  });

  it('a worker speaking another protocol or shardwise major version is refused at Register (FAILED_PRECONDITION)', async () => {
    await start();
    const w = worker();
    await refused(w.register('old', { protocolVersion: 99 }), GrpcStatus.FAILED_PRECONDITION,
      new RegExp(`incompatible protocol: worker speaks 99, coordinator ${PROTOCOL_VERSION}`));
    await refused(w.register('old', { shardwiseVersion: '9.0.0' }), GrpcStatus.FAILED_PRECONDITION,
      /incompatible shardwise version: worker runs 9\.0\.0, coordinator \d+\.\d+\.\d+/);
    // Nothing was registered: the same id joins cleanly and trains.
    await w.join('old');
    await w.train(await w.pullUntil(StepKind.TRAIN));
    await nextStepIs(1, w);
  });

  it('a worker with another model is refused at GetWeights (FAILED_PRECONDITION) and dropped', async () => {
    const c = await start();
    const bad = worker();
    await bad.join('honest-first');
    await bad.leave();
    const impostor = worker();
    await impostor.register('impostor');
    impostor.parts = bad.parts;
    bad.parts = null;
    const refusal = await refused(impostor.getWeights('sha256:0123456789abcdef'), GrpcStatus.FAILED_PRECONDITION,
      /incompatible model: fingerprint sha256:0123456789abcdef is not the job's model/);
    assert.doesNotMatch(refusal.details, /sha256:[0-9a-f]{32}/, "the refusal reveals the job's fingerprint, which would let an impostor in");
    await refused(impostor.pull(100), GrpcStatus.NOT_FOUND, /worker 'impostor' was dropped \(incompatible model.*register again/);
    assert.equal(await metric(c, 'shardwise_worker_failures_total'), 1);
    const good = await worker().join('good');
    await good.train(await good.pullUntil(StepKind.TRAIN));
    await nextStepIs(1, good);
  });

  it('a gradient of the wrong shape is refused (INVALID_ARGUMENT naming it); the sender is dropped and its share redone', async () => {
    const c = await start({ minWorkers: 2 });
    const [w1, w2] = [await worker().join('w1'), await worker().join('w2')];
    const a1 = await w1.pullUntil(StepKind.TRAIN);
    const a2 = await w2.pullUntil(StepKind.TRAIN);
    assert.deepEqual([ids(a1), ids(a2)], [[0, 1], [2, 3]]);
    const name = 'block2_conv1_conv/kernel';
    const short = (t: WireTensor): WireTensor => ({ ...t, shape: [t.data.length - 1], data: (t.data as Float32Array).subarray(1) });
    const bad = w1.shareMessages(a1, w1.computeShare(a1), { tensors: (ts) => replace(ts, name, short) });
    await refused(w1.push(bad), GrpcStatus.INVALID_ARGUMENT, /gradient 'block2_conv1_conv\/kernel': expected block2_conv1_conv\/kernel \[3,3,32,64\] float32, got .*\[18431\]/);
    await refused(w1.pull(100), GrpcStatus.NOT_FOUND, /dropped \(sent a corrupt share for step 0/);
    // w2's own share is accepted, then it is handed w1's micro-batches in the same step.
    assert.equal((await w2.train(a2)).globalStep, 0);
    const redo = await w2.pullUntil(StepKind.TRAIN);
    assert.deepEqual([redo.globalStep, ids(redo)], [0, [0, 1]]);
    await w2.train(redo);
    // The dropped worker registers again and the job goes on with both.
    await w1.join('w1');
    await nextStepIs(1, w1, w2);
    assert.equal(await metric(c, 'shardwise_redone_shares_total'), 1);
    assert.equal(await metric(c, 'shardwise_steps_total'), 2);
  });

  it('a gradient whose chunks fall short of its shape is refused (INVALID_ARGUMENT); the share is redone after the worker re-registers', async () => {
    await start();
    const w = await worker().join('w');
    const a = await w.pullUntil(StepKind.TRAIN);
    const messages = w.shareMessages(a, w.computeShare(a));
    // Same manifest, fewer bytes: the chunk says the tensor is 40 bytes long.
    const chunks = messages.filter((m) => m.payload?.$case === 'chunk' && m.payload.chunk.name === 'head_logits/kernel');
    assert.equal(chunks.length, 1);
    if (chunks[0].payload?.$case === 'chunk') chunks[0].payload.chunk.data = chunks[0].payload.chunk.data.subarray(0, 40);
    await refused(w.push(messages), GrpcStatus.INVALID_ARGUMENT, /tensor 'head_logits\/kernel' is incomplete: 1 chunks cover 40 of \d+ bytes/);
    // The only worker is gone, so its micro-batches wait; it registers again and gets them.
    await refused(w.pull(100), GrpcStatus.NOT_FOUND, /register again/);
    await w.join('w');
    const redo = await w.pullUntil(StepKind.TRAIN);
    assert.deepEqual([redo.globalStep, ids(redo)], [0, [0, 1, 2, 3]]);
    await w.train(redo);
    await nextStepIs(1, w);
  });

  it('a NaN or Inf gradient with a finite loss is refused (INVALID_ARGUMENT naming tensor and element); the step completes with honest shares', async () => {
    const c = await start({ minWorkers: 2 });
    const [w1, w2] = [await worker().join('w1'), await worker().join('w2')];
    const a1 = await w1.pullUntil(StepKind.TRAIN);
    const a2 = await w2.pullUntil(StepKind.TRAIN);
    const poison = (value: number) => (t: WireTensor): WireTensor => {
      const data = Float32Array.from(t.data as Float32Array);
      data[3] = value;
      return { ...t, data };
    };
    await refused(w1.push(w1.shareMessages(a1, w1.computeShare(a1), { tensors: (ts) => replace(ts, 'head_logits/kernel', poison(NaN)) })),
      GrpcStatus.INVALID_ARGUMENT, /tensor 'head_logits\/kernel' has NaN at element 3 of \d+; expected finite values/);
    await refused(w2.push(w2.shareMessages(a2, w2.computeShare(a2), { tensors: (ts) => replace(ts, 'block1_conv1_bn/moving_mean', poison(-Infinity)) })),
      GrpcStatus.INVALID_ARGUMENT, /tensor 'block1_conv1_bn\/moving_mean' has -Infinity at element 3/);
    assert.equal(await metric(c, 'shardwise_worker_failures_total'), 2);
    const fresh = await worker().join('w3');
    const redo = await fresh.pullUntil(StepKind.TRAIN);
    assert.deepEqual([redo.globalStep, ids(redo)], [0, [0, 1, 2, 3]]);
    await fresh.train(redo);
    await w1.join('w1');
    await nextStepIs(1, w1, fresh);
  });

  it('a message over the negotiated limit is refused (RESOURCE_EXHAUSTED); the worker keeps its share and pushes it properly', async () => {
    await start();
    const w = worker();
    const reg = await w.register('small', { maxMessageBytes: 65536 });
    assert.equal(reg.maxMessageBytes, 65536, 'the smaller of the two limits');
    await w.join('small', { maxMessageBytes: 65536 });
    const a = await w.pullUntil(StepKind.TRAIN);
    assert.deepEqual(ids(a), [0, 1], 'an assignment carries what fits in 64 KiB (3 micro-batches of 4 samples) cut to a node of the summation tree');
    const messages = w.shareMessages(a, w.computeShare(a), { maxMessageBytes: 1024 * 1024 });
    await refused(w.push(messages), GrpcStatus.RESOURCE_EXHAUSTED, /chunk of tensor '.+' is \d+ bytes, over the 65536-byte message limit/);
    // A message over the server's own limit (4 MiB) is stopped by the transport, with the same status.
    const huge: WireTensor = { name: 'head_logits/kernel', dtype: 'float32', shape: [1_200_000], data: new Float32Array(1_200_000) };
    const oversized = [messages[0], ...w.shareMessages(a, w.computeShare(a), { tensors: () => [huge], maxMessageBytes: 8 << 20 }).slice(1)];
    await refused(w.push(oversized), GrpcStatus.RESOURCE_EXHAUSTED, /larger than max|message limit/);
    // Nothing was counted and the worker was not dropped: the same share, pushed in small chunks, is accepted.
    assert.equal((await w.push(w.shareMessages(a, w.computeShare(a)))).globalStep, 0);
    const rest = await w.pullUntil(StepKind.TRAIN);
    assert.deepEqual([rest.globalStep, ids(rest)], [0, [2, 3]]);
    await w.train(rest);
    await nextStepIs(1, w);
  });

  it('a push for a stale step is refused (FAILED_PRECONDITION), not counted, and reported as a rejected duplicate', async () => {
    await start();
    const w = await worker().join('w');
    const a = await w.pullUntil(StepKind.TRAIN);
    const share = w.shareMessages(a, w.computeShare(a));
    await w.push(share);
    await refused(w.push(share), GrpcStatus.FAILED_PRECONDITION, /push for step 0, but the coordinator is (at step 1|between steps); nothing was counted/);
    const done = await withDeadline(w.runUntilStop(), 30_000, 'the rest of the job');
    assert.deepEqual(done, { train: 3, eval: 1 });
    await w.leave();
    await withDeadline((coordinator as RunningCoordinator).done, 5000, 'the coordinator to finish');
    const report = readMetrics((coordinator as RunningCoordinator).runDir).find((r) => r.type === 'epoch-report');
    assert.ok(report?.type === 'epoch-report');
    assert.equal(report.duplicatesRejected, 4, 'the four micro-batches of the repeated share');
    assert.ok(report.exactlyOnce, 'every sample counted once');
    assert.equal(report.counted, report.expected);
  });

  it('a held share on the Session stream is answered with the order behind it when that is decided at once; a stale one leaves the session open', async () => {
    await start({ plannedExchange: false }); // a planned TRAIN stands for the ready the share carries here
    // A held share needs a data plane; nothing listens at this one, the test ends before the allreduce matters.
    const w = await worker().join('w', { dataAddress: '127.0.0.1:1' });
    const a = await w.pullUntil(StepKind.TRAIN);
    const share = w.shareMessages(a, w.computeShare(a));
    const header = share[0].payload?.$case === 'header' ? share[0].payload.header : assert.fail('no header');
    const stale = await w.holdOnSession({ ...header, globalStep: 5 }, true);
    assert.equal(stale.code, GrpcStatus.FAILED_PRECONDITION, stale.details);
    assert.match(stale.details, /push for step 5, but the coordinator is at step 0; nothing was counted/);
    // The ready sent behind the refused share is answered at once, in the same message: the worker still
    // holds its handout, sent again.
    assert.equal(stale.withOrder, true, 'the answer came on the order for the ready behind the share');
    const again = (await w.readOrder()).assignment;
    assert.deepEqual([again.kind, again.globalStep, ids(again)], [StepKind.TRAIN, 0, ids(a)]);
    const accepted = await w.holdOnSession(header, false);
    assert.deepEqual([accepted.code, accepted.globalStep, accepted.workersReported, accepted.withOrder], [0, 0, 1, false], accepted.details);
    // A held share before any SessionReady names no session: the stream is refused.
    const early = worker();
    await early.join('early', { dataAddress: '127.0.0.1:1' });
    await refused(early.holdOnSession(header, false), GrpcStatus.INVALID_ARGUMENT, /Session: expected a SessionReady before a held share/);
  });

  it('a held share that completes the step is answered on its REDUCE, in one message; an earlier one at once, its order later', async () => {
    await start({ minWorkers: 2, plannedExchange: false }); // the REDUCE path
    // Nothing listens at these data planes: the test ends before the allreduce matters.
    const [w1, w2] = [await worker().join('w1', { dataAddress: '127.0.0.1:1' }), await worker().join('w2', { dataAddress: '127.0.0.1:2' })];
    const [a1, a2] = [await w1.pullUntil(StepKind.TRAIN), await w2.pullUntil(StepKind.TRAIN)];
    const headerOf = (w: FakeWorker, a: StepAssignment): GradientHeader => {
      const first = w.shareMessages(a, w.computeShare(a))[0].payload;
      return first?.$case === 'header' ? first.header : assert.fail('no header');
    };
    const first = await w1.holdOnSession(headerOf(w1, a1), true);
    assert.deepEqual([first.code, first.workersReported, first.withOrder], [0, 1, false], first.details);
    const last = await w2.holdOnSession(headerOf(w2, a2), true);
    assert.deepEqual([last.code, last.workersReported, last.withOrder], [0, 2, true], last.details);
    for (const w of [w2, w1]) {
      const order = (await w.readOrder()).assignment;
      assert.deepEqual([order.kind, order.globalStep], [StepKind.REDUCE, 0], `${w.id}'s order after the step's last share`);
    }
  });

  it('a TRAIN with its planned allreduce stands for the next ready: the next share comes unasked, a held share sent after it is answered alone', async () => {
    await start({ minWorkers: 2 });
    // These data planes accept connections and never answer: the plan's exchange waits (a plan whose
    // coordinator part failed would no longer go out with the shares).
    const silent = await silentListener();
    try {
      const dataAddress = silent.address;
      const [w1, w2] = [await worker().join('w1', { dataAddress }), await worker().join('w2', { dataAddress })];
      const [a1, a2] = [await w1.pullUntil(StepKind.TRAIN), await w2.pullUntil(StepKind.TRAIN)];
      assert.match(a1.reduce?.key ?? '', /step-0\/planned-\d+$/, 'the share carries its step\'s planned allreduce');
      // Without another ready, each worker's share of step 1 follows, its update the planned attempt's result.
      for (const [w, a] of [[w1, a1], [w2, a2]] as const) {
        const next = (await w.readOrder()).assignment;
        assert.deepEqual([next.kind, next.globalStep, next.apply?.key], [StepKind.TRAIN, 1, a.reduce?.key], `${w.id}'s order after its planned share`);
      }
      const first = w1.shareMessages(a1, w1.computeShare(a1))[0].payload;
      const held = await w1.holdOnSession(first?.$case === 'header' ? first.header : assert.fail('no header'), false);
      assert.deepEqual([held.code, held.workersReported, held.withOrder], [0, 1, false], held.details);
    } finally {
      silent.close();
    }
  });

  it('a push for micro-batches not assigned to the worker is refused (FAILED_PRECONDITION); its own share is then accepted', async () => {
    await start({ minWorkers: 2 });
    const [w1, w2] = [await worker().join('w1'), await worker().join('w2')];
    const a1 = await w1.pullUntil(StepKind.TRAIN);
    const a2 = await w2.pullUntil(StepKind.TRAIN);
    const taken = w1.shareMessages(a2, w1.computeShare(a2), { header: { workerId: 'w1' } });
    await refused(w1.push(taken), GrpcStatus.FAILED_PRECONDITION,
      /step 0: micro-batches \[2, 3\] are not assigned to worker 'w1': it holds \[0, 1\]; nothing was counted/);
    assert.equal((await w1.train(a1)).workersReported, 1);
    assert.equal((await w2.train(a2)).workersReported, 2);
    await nextStepIs(1, w1);
  });

  it('a push computed on another config version is refused (FAILED_PRECONDITION) and can be redone', async () => {
    await start();
    const w = await worker().join('w');
    const a = await w.pullUntil(StepKind.TRAIN);
    await refused(w.push(w.shareMessages(a, w.computeShare(a), { header: { configVersion: 7 } })), GrpcStatus.FAILED_PRECONDITION,
      /step 0 runs on config v0, the push was computed on v7: call GetConfig/);
    await w.train(a);
    await nextStepIs(1, w);
  });

  it('a replica whose weights hash disagrees is recorded, counted and sent to GetWeights', async () => {
    const c = await start({ hashEverySteps: 1 });
    const w = await worker().join('w');
    const a = await w.pullUntil(StepKind.TRAIN);
    assert.ok(a.reportWeightsHash);
    await w.push(w.shareMessages(a, w.computeShare(a), { header: { weightsHash: 'sha256:not-the-same' } }));
    const { assignment: next } = await w.pull();
    assert.equal(next.updateKind, UpdateKind.WEIGHTS_REF, 'the replica is sent to GetWeights rather than patched');
    assert.equal(await metric(c, 'shardwise_replica_hash_mismatches_total'), 1);
    const record = readMetrics(c.runDir).find((r) => r.type === 'replica-hash');
    assert.ok(record?.type === 'replica-hash');
    assert.deepEqual([record.globalStep, record.agree, record.workers], [0, false, { w: 'sha256:not-the-same' }]);
  });

  it('a draining worker finishes the share it holds, gets nothing more and is told STOP', async () => {
    await start({ minWorkers: 2 });
    const [w1, w2] = [await worker().join('w1'), await worker().join('w2')];
    const a1 = await w1.pullUntil(StepKind.TRAIN);
    const a2 = await w2.pullUntil(StepKind.TRAIN);
    await w1.leave(true);
    assert.equal((await w1.heartbeat()).drain, true);
    await w1.train(a1);
    assert.equal((await w1.pull()).assignment.kind, StepKind.STOP);
    await w2.train(a2);
    assert.deepEqual(await w1.leave(), { lastCountedStep: 0 });
    await refused(w1.pull(100), GrpcStatus.NOT_FOUND, /has left the job/);
  });

  it('a sample count that does not match the share is refused (INVALID_ARGUMENT)', async () => {
    await start();
    const w = await worker().join('w');
    const a = await w.pullUntil(StepKind.TRAIN);
    await refused(w.push(w.shareMessages(a, w.computeShare(a), { header: { sampleCount: 15 } })), GrpcStatus.INVALID_ARGUMENT,
      /sample_count: micro-batches \[0, 1, 2, 3\] hold 16 samples, the result says 15/);
  });

  it('a well-formed share with a non-finite loss fails the job: the model diverged', async () => {
    const c = await start();
    const w = await worker().join('w');
    const a = await w.pullUntil(StepKind.TRAIN);
    const result = w.computeShare(a);
    await w.push(w.shareMessages(a, result, { header: { lossSum: Infinity } }));
    assert.equal((await w.pull(5000)).assignment.kind, StepKind.STOP, 'workers of a failed job are told to stop');
    await w.leave();
    const outcome = await withDeadline(c.done, 20_000, 'the job to fail');
    assert.equal(outcome.status, 'failed');
    assert.match(String((outcome.error as Error).message), /the model diverged: expected a finite training loss, got Infinity at epoch 0, global step 0/);
    assert.equal(c.state(), 'failed');
  });

  it('a worker silent past its lease is dropped and its micro-batches go to the worker still heartbeating', async () => {
    // A lease long enough that heartbeats every 50 ms from this busy process (it runs the coordinator too)
    // never miss it on a loaded machine, short enough for the test.
    const c = await start({ minWorkers: 2, leaseMs: 1500, heartbeatIntervalMs: 50 });
    const [w1, w2] = [await worker().join('w1'), await worker().join('w2')];
    w2.startHeartbeats(50);
    await w1.pullUntil(StepKind.TRAIN);
    const a2 = await w2.pullUntil(StepKind.TRAIN);
    await w2.train(a2);
    // w1 says nothing more: past the lease its micro-batches reach w2's session.
    const redo = await w2.pullUntil(StepKind.TRAIN, 10_000);
    assert.deepEqual([redo.globalStep, ids(redo)], [0, [0, 1]]);
    await w2.train(redo);
    assert.equal(await metric(c, 'shardwise_worker_failures_total'), 1);
    await refused(w1.pull(100), GrpcStatus.NOT_FOUND, /no heartbeat for 1500 ms/);
    await w1.join('w1');
    w1.startHeartbeats(50);
    await nextStepIs(1, w1, w2);
  });

  it('a Session stream that ends drops its incarnation at once, not at the lease; a Leave from that incarnation then touches nothing', async () => {
    const c = await start({ minWorkers: 2, leaseMs: 60_000, heartbeatIntervalMs: 50 });
    const [w1, w2] = [await worker().join('w1'), await worker().join('w2')];
    await w1.pullUntil(StepKind.TRAIN);
    const a2 = await w2.pullUntil(StepKind.TRAIN);
    await w2.train(a2);
    const ended = Date.now();
    w1.endSession();
    // With a 60 s lease only the end of w1's stream can send its micro-batches to w2 within the wait.
    const redo = await w2.pullUntil(StepKind.TRAIN, 3000);
    assert.deepEqual([redo.globalStep, ids(redo)], [0, [0, 1]]);
    assert.ok(Date.now() - ended < 10_000, `the redo came ${Date.now() - ended} ms after the stream ended`);
    await w2.train(redo);
    assert.equal(await metric(c, 'shardwise_worker_failures_total'), 1);
    const old = w1.registration.incarnation;
    await w1.join('w1');
    assert.equal(w1.registration.incarnation, old + 1, 'registering again is a new incarnation');
    await unaryCall('Leave', { deadlineMs: 5000 }, (md, o, cb) =>
      w1.client.leave({ workerId: 'w1', incarnation: old, drain: false, reason: 'late Leave of the old incarnation' }, md, o, cb));
    await refused(unaryCall('Heartbeat', { deadlineMs: 5000 }, (md, o, cb) =>
      w1.client.heartbeat({ workerId: 'w1', incarnation: old, state: 2, lastCompletedStep: 0, configVersion: 0 }, md, o, cb)),
    GrpcStatus.NOT_FOUND, new RegExp(`newer incarnation than ${old}`));
    await nextStepIs(1, w1, w2);
  });
});
