import assert from 'node:assert/strict';
import { Metadata, status } from '@grpc/grpc-js';
import {
  ConfigState,
  HeartbeatResponse,
  CoordinatorClient,
  CoordinatorServer,
  GetWeightsResponse,
  PushGradientsRequest,
  PushGradientsResponse,
} from '../proto';
import { ConfigError, ListenError } from '../common/errors';
import {
  COORDINATOR_SERVICE,
  IncompatiblePeerError,
  MessageTooLargeError,
  NonFiniteValueError,
  NotReadyError,
  RpcError,
  RunningGrpcServer,
  StaleRequestError,
  TensorAssembler,
  TensorCodecError,
  UnknownWorkerError,
  WireTensor,
  clientStreamCall,
  clientStreamHandler,
  createCoordinatorClient,
  encodeTensors,
  isRetryableCode,
  serverStreamCall,
  serverStreamHandler,
  specFromProto,
  specOf,
  specToProto,
  startGrpcServer,
  statusCodeFor,
  unaryCall,
  unaryHandler,
  withRpcRetry,
} from '../common/wire';

/** A promise with its resolve function, to wait for a condition the server reaches. */
function signal<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function floats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out[i] = (x / 2147483648 - 0.5) * 1e-3;
  }
  out[17] = -0;
  out[18] = 1.4e-45;
  return out;
}

function sameBits(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/**
 * A Coordinator that only moves bytes: PushGradients reassembles and keeps the tensors, GetWeights sends
 * them back. Worker ids steer the failure cases the tests need.
 */
class EchoCoordinator {
  stored = new Map<string, WireTensor>();
  heartbeatFailuresLeft = 0;
  chunksReceived = 0;
  readonly firstChunkIn = signal();
  readonly firstChunkOut = signal();
  private readonly release = signal();
  constructor(private readonly maxMessageBytes: number) {}

  /** Lets handlers parked by the tests return, so nothing is left pending after a test. */
  stop(): void {
    this.release.resolve();
  }

  implementation(): CoordinatorServer {
    const impl: Partial<CoordinatorServer> = {
      getConfig: unaryHandler(async (req) => {
        if (req.workerId === '') throw new UnknownWorkerError('');
        return ConfigState.fromPartial({ configVersion: 3, globalStep: 7, groups: [{ name: 'head', frozen: false, learningRate: 0.01 }] });
      }),
      heartbeat: unaryHandler(async () => {
        if (this.heartbeatFailuresLeft-- > 0) throw new NotReadyError('coordinator is restoring a checkpoint');
        return { configVersion: 3, drain: false, leaseMs: 10_000, voidedAllreduce: '' };
      }),
      pushGradients: clientStreamHandler(async (messages) => {
        let asm: TensorAssembler | undefined;
        let step = 0;
        for await (const msg of messages as AsyncIterable<PushGradientsRequest>) {
          const p = msg.payload;
          if (p?.$case === 'header') {
            step = p.header.globalStep;
            asm = new TensorAssembler({ expected: p.header.tensors.map(specFromProto), maxMessageBytes: this.maxMessageBytes });
          } else if (p?.$case === 'chunk') {
            if (!asm) throw new TensorCodecError(p.chunk.name, 'expected a GradientHeader before the first chunk');
            asm.add(p.chunk);
            this.chunksReceived++;
            this.firstChunkIn.resolve();
            if (step === 999) await this.release.promise; // parked until the test stops the server
          }
        }
        if (!asm) throw new TensorCodecError('', 'expected a GradientHeader, the stream was empty');
        this.stored = asm.finish();
        return PushGradientsResponse.fromPartial({ globalStep: step, workersReported: 1 });
      }),
      getWeights: serverStreamHandler((req) => this.weightsMessages(req.workerId)),
    };
    return impl as CoordinatorServer;
  }

  /** The manifest, then the stored tensors; 'silent' and 'stall' park on the way. */
  private async *weightsMessages(workerId: string): AsyncGenerator<GetWeightsResponse> {
    const tensors = [...this.stored.values()];
    yield GetWeightsResponse.fromPartial({
      payload: { $case: 'manifest', manifest: { globalStep: 2, tensors: tensors.map((t) => specToProto(specOf(t))) } },
    });
    if (workerId === 'silent') {
      await this.release.promise;
      return;
    }
    let first = true;
    for (const chunk of encodeTensors(tensors, { chunkBytes: 64 * 1024 })) {
      yield { payload: { $case: 'chunk', chunk } };
      if (first && workerId === 'stall') {
        first = false;
        this.firstChunkOut.resolve();
        await this.release.promise;
      }
    }
  }
}

interface Harness {
  server: RunningGrpcServer;
  coordinator: EchoCoordinator;
  client: CoordinatorClient;
}

async function startHarness(serverLimit = 4 << 20, clientLimit = 4 << 20): Promise<Harness> {
  const coordinator = new EchoCoordinator(serverLimit);
  const server = await startGrpcServer([{ definition: COORDINATOR_SERVICE, implementation: coordinator.implementation() }], {
    host: '127.0.0.1',
    port: 0,
    maxMessageBytes: serverLimit,
  });
  const client = createCoordinatorClient({ target: server.address, maxMessageBytes: clientLimit });
  return { server, coordinator, client };
}

async function stopHarness(h: Harness | undefined): Promise<void> {
  if (!h) return;
  h.coordinator.stop();
  h.client.close();
  await h.server.shutdown(0);
}

function push(h: Harness, tensors: WireTensor[], options: { step?: number; chunkBytes?: number; maxMessageBytes?: number; deadlineMs?: number } = {}): Promise<PushGradientsResponse> {
  function* messages(): Generator<PushGradientsRequest> {
    yield {
      payload: {
        $case: 'header',
        header: { workerId: 'w1', globalStep: options.step ?? 1, configVersion: 1, sampleCount: 32, lossSum: 70.5, correctCount: 9, correctTop5: 20, microBatchIds: [0, 1], tensors: tensors.map((t) => specToProto(specOf(t))), statDeltas: [], weightsHash: '', weightsVersion: 0, held: false },
      },
    };
    for (const chunk of encodeTensors(tensors, { chunkBytes: options.chunkBytes ?? 64 * 1024, maxMessageBytes: options.maxMessageBytes })) {
      yield { payload: { $case: 'chunk', chunk } };
    }
  }
  return clientStreamCall('Coordinator/PushGradients', { deadlineMs: options.deadlineMs ?? 10_000 }, messages(), (md, o, cb) =>
    h.client.pushGradients(md, o, cb));
}

async function pull(h: Harness, workerId: string, deadlineMs = 10_000): Promise<{ responses: GetWeightsResponse[]; tensors: Map<string, WireTensor> }> {
  const responses: GetWeightsResponse[] = [];
  let asm: TensorAssembler | undefined;
  for await (const msg of serverStreamCall('Coordinator/GetWeights', { deadlineMs }, (md, o) =>
    h.client.getWeights({ workerId, includeOptimizerState: false, modelFingerprint: '' }, md, o))) {
    responses.push(msg);
    if (msg.payload?.$case === 'manifest') asm = new TensorAssembler({ expected: msg.payload.manifest.tensors.map(specFromProto) });
    else if (msg.payload?.$case === 'chunk') asm?.add(msg.payload.chunk);
  }
  return { responses, tensors: asm ? asm.finish() : new Map() };
}

describe('grpc transport', function () {
  this.timeout(30_000);
  let h: Harness | undefined;
  afterEach(async () => {
    await stopHarness(h);
    h = undefined;
  });

  const gradients = (): WireTensor[] => [
    { name: 'dense/kernel', dtype: 'float32', shape: [1000, 300], data: floats(300_000, 1) },
    { name: 'dense/bias', dtype: 'float32', shape: [300], data: floats(300, 2) },
    { name: 'counts', dtype: 'int32', shape: [5], data: Int32Array.of(1, -1, 2 ** 31 - 1, -(2 ** 31), 0) },
  ];

  it('moves a multi-chunk tensor to the server and back bit-exactly', async () => {
    h = await startHarness();
    const sent = gradients();
    const reply = await push(h, sent, { step: 4 });
    assert.deepEqual(reply, { globalStep: 4, workersReported: 1 });
    assert.ok(h.coordinator.chunksReceived >= 19, `expected a multi-chunk stream, got ${h.coordinator.chunksReceived} chunks`);
    const { responses, tensors } = await pull(h, 'w1');
    assert.equal(responses[0].payload?.$case, 'manifest');
    assert.ok(responses.length > 20);
    for (const t of sent) {
      const got = tensors.get(t.name);
      assert.ok(got, `${t.name} missing`);
      assert.deepEqual(got.shape, t.shape);
      assert.ok(sameBits(got.data, t.data), `${t.name} changed on the way`);
    }
    // Unary calls answer through the same mapping.
    const config = await unaryCall<ConfigState>('Coordinator/GetConfig', { deadlineMs: 5000 }, (md, o, cb) => h!.client.getConfig({ workerId: 'w1' }, md, o, cb));
    assert.equal(config.groups[0].learningRate, 0.01);
  });

  it('refuses a message over the server limit with RESOURCE_EXHAUSTED and keeps serving', async () => {
    h = await startHarness(64 * 1024, 4 << 20);
    const big: WireTensor[] = [{ name: 'g', dtype: 'float32', shape: [100_000], data: floats(100_000, 3) }];
    await assert.rejects(push(h, big, { chunkBytes: 128 * 1024 }), (e: unknown) => {
      assert.ok(e instanceof RpcError, String(e));
      assert.equal(e.code, status.RESOURCE_EXHAUSTED);
      assert.equal(e.method, 'Coordinator/PushGradients');
      assert.equal(e.retryable, false);
      return true;
    });
    // The same tensor in chunks that fit goes through on the same server and connection.
    await push(h, big, { chunkBytes: 32 * 1024 });
    assert.ok(sameBits(h.coordinator.stored.get('g')!.data, big[0].data));
  });

  it('refuses a NaN gradient with INVALID_ARGUMENT naming the tensor and the index', async () => {
    h = await startHarness();
    const bad = gradients();
    bad[0].data[123_456] = Number.NaN;
    await assert.rejects(push(h, bad), (e: unknown) => {
      assert.ok(e instanceof RpcError, String(e));
      assert.equal(e.code, status.INVALID_ARGUMENT);
      assert.match(e.message, /tensor 'dense\/kernel' has NaN at element 123456 of 300000/);
      assert.match(e.details, /\[NonFiniteValueError\]$/);
      return true;
    });
    // The server stopped reading at the bad chunk rather than taking the whole stream first.
    assert.ok(h.coordinator.chunksReceived < 19, `server read ${h.coordinator.chunksReceived} chunks`);
  });

  it('gives UNAVAILABLE, not a hang, when the server is stopped in the middle of a server stream', async () => {
    h = await startHarness();
    await push(h, gradients());
    const started = Date.now();
    const pulling = pull(h, 'stall', 20_000);
    await h.coordinator.firstChunkOut.promise;
    h.server.server.forceShutdown();
    await assert.rejects(pulling, (e: unknown) => {
      assert.ok(e instanceof RpcError, String(e));
      assert.equal(e.codeName, 'UNAVAILABLE', e.message);
      assert.equal(e.retryable, true);
      return true;
    });
    assert.ok(Date.now() - started < 10_000, 'the failure should come from the dropped connection, not the deadline');
  });

  it('gives UNAVAILABLE when the server is stopped in the middle of a client stream', async () => {
    h = await startHarness();
    const pushing = push(h, gradients(), { step: 999, deadlineMs: 20_000 });
    await h.coordinator.firstChunkIn.promise;
    const started = Date.now();
    h.server.server.forceShutdown();
    await assert.rejects(pushing, (e: unknown) => e instanceof RpcError && e.code === status.UNAVAILABLE);
    assert.ok(Date.now() - started < 10_000);
  });

  it('ends a call whose server never answers with DEADLINE_EXCEEDED at the deadline', async () => {
    h = await startHarness();
    const started = Date.now();
    await assert.rejects(pull(h, 'silent', 300), (e: unknown) => {
      assert.ok(e instanceof RpcError);
      assert.equal(e.code, status.DEADLINE_EXCEEDED);
      assert.match(e.message, /did not answer before the call deadline/);
      return true;
    });
    assert.ok(Date.now() - started < 5_000);
  });

  it('reports a call this side aborted as CANCELLED, not as the server going away', async () => {
    h = await startHarness();
    const abort = new AbortController();
    const responses: GetWeightsResponse[] = [];
    const pulling = (async () => {
      for await (const msg of serverStreamCall('Coordinator/GetWeights', { deadlineMs: 20_000, signal: abort.signal }, (md, o) =>
        h!.client.getWeights({ workerId: 'silent', includeOptimizerState: false, modelFingerprint: '' }, md, o))) {
        responses.push(msg);
        abort.abort();
      }
    })();
    await assert.rejects(pulling, (e: unknown) => e instanceof RpcError && e.codeName === 'CANCELLED' && !e.retryable);
    assert.equal(responses.length, 1);
  });

  it('says which address it cannot listen on when the port is taken', async () => {
    h = await startHarness();
    await assert.rejects(startGrpcServer([], { port: h.server.port }),
      (e: unknown) => e instanceof ListenError &&
        e.message === `gRPC server: cannot listen on 127.0.0.1:${h!.server.port}: the port is already in use by another process; ` +
          'choose another --port (0 picks a free port)');
  });

  it('reports a local encoding error as itself, not as a cancelled call', async () => {
    h = await startHarness();
    const wrong: WireTensor[] = [{ name: 'g', dtype: 'float32', shape: [10], data: new Float32Array(9) }];
    await assert.rejects(push(h, wrong), (e: unknown) => e instanceof TensorCodecError && !(e instanceof RpcError));
  });

  describe('status mapping and retries', () => {
    it('maps each domain error to one status code', () => {
      assert.equal(statusCodeFor(new TensorCodecError('x', 'bad')), status.INVALID_ARGUMENT);
      assert.equal(statusCodeFor(new NonFiniteValueError('x', 1, NaN, 2)), status.INVALID_ARGUMENT);
      assert.equal(statusCodeFor(new ConfigError('a.b', 'bad')), status.INVALID_ARGUMENT);
      assert.equal(statusCodeFor(new MessageTooLargeError('m', 2, 1)), status.RESOURCE_EXHAUSTED);
      assert.equal(statusCodeFor(new IncompatiblePeerError('protocolVersion', 1, 2)), status.FAILED_PRECONDITION);
      assert.equal(statusCodeFor(new StaleRequestError('globalStep', 5, 4)), status.FAILED_PRECONDITION);
      assert.equal(statusCodeFor(new UnknownWorkerError('w9')), status.NOT_FOUND);
      assert.equal(statusCodeFor(new NotReadyError('draining')), status.UNAVAILABLE);
      assert.equal(statusCodeFor(new Error('bug')), status.INTERNAL);
      assert.ok(isRetryableCode(status.UNAVAILABLE, false));
      assert.ok(isRetryableCode(status.DEADLINE_EXCEEDED, true));
      assert.ok(!isRetryableCode(status.DEADLINE_EXCEEDED, false));
      assert.ok(!isRetryableCode(status.INVALID_ARGUMENT, true));
    });

    it('retries UNAVAILABLE with backoff until the server is ready', async () => {
      h = await startHarness();
      h.coordinator.heartbeatFailuresLeft = 2;
      const waits: number[] = [];
      const reply = await withRpcRetry('Coordinator/Heartbeat', () =>
        unaryCall<HeartbeatResponse>('Coordinator/Heartbeat', { deadlineMs: 5000 }, (md, o, cb) => h!.client.heartbeat({ workerId: 'w1', state: 2, lastCompletedStep: 0, configVersion: 1, incarnation: 0 }, md, o, cb)),
      { initialDelayMs: 5, maxDelayMs: 20, onRetry: (_e, _a, ms) => waits.push(ms) });
      assert.equal(reply.leaseMs, 10_000);
      assert.equal(waits.length, 2);
      assert.ok(waits.every((ms) => ms >= 0 && ms <= 20), `waits within the policy's bounds: ${waits.join(', ')}`);
    });

    it('does not retry a status that cannot change, and gives up after maxAttempts on one that can', async () => {
      h = await startHarness();
      let calls = 0;
      await assert.rejects(withRpcRetry('Coordinator/GetConfig', () => {
        calls++;
        return unaryCall('Coordinator/GetConfig', { deadlineMs: 5000 }, (md, o, cb) => h!.client.getConfig({ workerId: '' }, md, o, cb));
      }, { initialDelayMs: 1, maxDelayMs: 1 }), (e: unknown) => e instanceof RpcError && e.code === status.NOT_FOUND && /register again/.test(e.message));
      assert.equal(calls, 1);

      const port = h.server.port;
      await stopHarness(h);
      h = undefined;
      const orphan = createCoordinatorClient({ target: `127.0.0.1:${port}` });
      let attempts = 0;
      try {
        await assert.rejects(withRpcRetry('Coordinator/GetConfig', () => {
          attempts++;
          return unaryCall('Coordinator/GetConfig', { deadlineMs: 2000, metadata: new Metadata() }, (md, o, cb) => orphan.getConfig({ workerId: 'w1' }, md, o, cb));
        }, { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 1 }), (e: unknown) => e instanceof RpcError && e.code === status.UNAVAILABLE && e.retryable);
      } finally {
        orphan.close();
      }
      assert.equal(attempts, 3);
    });
  });
});
