/**
 * The worker's Session stream (OrderStream) against a real coordinator on loopback: a TRAIN that carries its
 * step's planned allreduce stands for the worker's next ready, so the next order comes unasked; a held
 * share pushed after it is answered later on the same stream, and the stream's reader settles that answer
 * as it comes, with nobody asking for an order. The worker goes on to the next order without waiting for it.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GrpcStatus, initBackend, parseJobSpec, type ReadyState, RpcError, specFromProto, type WireTensor } from '../common';
import { type RunningCoordinator, startCoordinator } from '../coordinator';
import { type GradientHeader, StepKind, type TensorSpec } from '../proto';
import { AssignmentKind, type ComputedShare, CoordinatorLink } from '../worker';
import { FakeWorker, writeTinyCifar } from './coordinator-fake-worker';
import { withDeadline } from './support/deadline';
import { type SilentListener, silentListener } from './support/silent-listener';

/** Zero sums of the tensors `specs` lists (a held header carries only their names and shapes). */
function zeros(specs: readonly TensorSpec[]): WireTensor[] {
  return specs.map(specFromProto).map((s) => ({ ...s, dtype: 'float32' as const, data: new Float32Array(s.shape.reduce((a, b) => a * b, 1)) }));
}

/** A computed share of `microBatches` of step `step` with the tensors of `like` (another worker's header of the step). */
function shareOf(step: number, microBatches: ReadonlyArray<{ id: number; sampleCount: number }>, like: GradientHeader): ComputedShare {
  return {
    globalStep: step, epoch: 0, configVersion: like.configVersion, microBatchIds: microBatches.map((m) => m.id), grads: zeros(like.tensors), statDeltas: zeros(like.statDeltas),
    sampleCount: microBatches.reduce((n, m) => n + m.sampleCount, 0), lossSum: 1, correctTop1: 0, correctTop5: 0, weightsHash: '', weightsVersion: like.weightsVersion, computeSeconds: 0,
  };
}

describe('worker Session stream: an order that stands for the next ready, a held answer read on the way', function () {
  this.timeout(60_000);
  let dataDir: string;
  let runsDir: string;
  let coordinator: RunningCoordinator | undefined;
  const fakes: FakeWorker[] = [];
  let silent: SilentListener | undefined;

  before(async () => {
    await initBackend({ prefer: 'wasm', log: () => undefined });
    dataDir = writeTinyCifar(64, 5);
    runsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-order-stream-'));
  });
  after(async () => {
    fakes.forEach((w) => w.close());
    await coordinator?.close();
    silent?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(runsDir, { recursive: true, force: true });
  });

  it('reads the next share unasked before the answer to the held push, which settles by itself; a refusal rejects its answer', async () => {
    coordinator = await startCoordinator({
      spec: parseJobSpec(`
name: order-stream
seed: 1
data: { dir: ${JSON.stringify(dataDir)}, limit: 64, valFraction: 0.15, augment: { rotationDeg: 0 } }
model: { architecture: small_cnn }
training: { epochs: 1, batchSize: 16, microBatchSize: 4, evalBatchSize: 8 }
optimizer: { learningRate: 0.01 }
output: { runsDir: ${JSON.stringify(runsDir)} }
distributed: { leaseMs: 60000, stepDeadlineMs: 60000, minWorkers: 2 }
`),
      log: () => undefined, stopGraceMs: 2000, drainGraceMs: 100, progressStream: fs.createWriteStream('/dev/null'),
    });
    const grpc = coordinator.grpcAddress;
    // These data planes accept connections and never answer: the planned exchange waits while this test reads
    // (a plan whose coordinator part failed would no longer go out with the shares).
    silent = await silentListener();
    const [w1, w2] = [new FakeWorker(grpc), new FakeWorker(grpc)];
    fakes.push(w1, w2);
    await w1.join('w1', { dataAddress: silent.address });
    await w2.join('w2', { dataAddress: silent.address });
    const a2 = await w2.pullUntil(StepKind.TRAIN);
    const header2 = w2.shareMessages(a2, w2.computeShare(a2))[0].payload;
    const like = header2?.$case === 'header' ? header2.header : assert.fail('no header in w2\'s push');

    // w1's session through the worker's own stream.
    const stream = new CoordinatorLink({ target: grpc, maxMessageBytes: 4 << 20, rpcDeadlineMs: 10_000, transferDeadlineMs: 10_000 }).openSession();
    const ready: ReadyState = { workerId: 'w1', incarnation: w1.incarnation, lastCompletedStep: 0, configVersion: Math.max(0, w1.configVersion), weightsVersion: 0, maxWaitMs: 5000, reducedKey: '' };
    let first = (await stream.next(ready)).assignment;
    for (let k = 0; first.kind === AssignmentKind.Wait && k < 3; k++) first = (await stream.next(ready)).assignment;
    assert.deepEqual([first.kind, first.globalStep], [AssignmentKind.Train, 0]);
    const planned = first.reduce?.key ?? assert.fail('the share carries no planned allreduce');
    assert.equal(stream.orderComing, true, 'a planned TRAIN stands for the next ready');

    // The next order comes without a ready: the share of step 1, applying the planned attempt's result.
    const second = (await stream.next(ready)).assignment;
    assert.deepEqual([second.kind, second.globalStep, second.update.apply?.key], [AssignmentKind.Train, 1, planned]);

    // The held push of step 0 after it: its answer settles with nobody asking for an order (the worker may be
    // in the exchange meanwhile), and settle() then has nothing to wait for.
    const answer = await stream.sendHeld('w1', shareOf(0, first.microBatches.map((m) => ({ id: m.id, sampleCount: m.sampleIds.length })), like), ready);
    await withDeadline(answer.promise, 10_000, 'the answer, read by the stream itself');
    assert.equal(answer.settled, true);
    await stream.settle(answer);

    // A held push of micro-batches that are w2's is refused: its answer rejects with the refusal, the stream goes on.
    const stolen = await stream.sendHeld('w1', shareOf(0, a2.microBatches.map((m) => ({ id: m.id, sampleCount: m.sampleIndices.length })), like), ready);
    await assert.rejects(stream.settle(stolen), (err: unknown) => err instanceof RpcError && err.code === GrpcStatus.FAILED_PRECONDITION);
    stream.close();
  });
});
