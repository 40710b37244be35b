/**
 * bench/exchange over gRPC, the parameter server as the product runs it today: every worker pushes its
 * gradient (PushGradients, chunked), the server averages the W pushes and pushes the average to every
 * worker on its Session stream as soon as it exists.
 */
import {
  COORDINATOR_SERVICE,
  addFloatsInto,
  DEFAULT_MAX_MESSAGE_BYTES,
  TensorAssembler,
  WireTensor,
  clientStreamCall,
  clientStreamHandler,
  createCoordinatorClient,
  grpcChannelCredentials,
  grpcServerCredentials,
  duplexStreamHandler,
  encodeTensor,
  openDuplexCall,
  specFromProto,
  specOf,
  specToProto,
  startGrpcServer,
} from '../common';
import {
  CoordinatorServer,
  PushGradientsRequest,
  PushGradientsResponse,
  SessionOrder,
  SessionRequest,
  StepAssignment,
  StepKind,
  UpdateKind,
} from '../proto';
import { benchTls, benchWorkerId } from './exchange-tls';
import { DEADLINE_MS, ExchangeServer, GRAD_NAME, addAndScale, gradientOf, samplesOf, serveExchanges } from './exchange-common';

/** The server side: gathers W pushes per step, averages, pushes the average on every worker's session. */
class Averager {
  private sum: Float32Array;
  /** Warm buffers reused across steps: fresh 8.6 MB ones cost page faults and GC every step. */
  private readonly freeSums: Float32Array[] = [];
  private readonly freeScratch: Float32Array[] = [];
  private samples = 0;
  private pushes = 0;
  /** Average of each step, published once the W-th push arrives, dropped once W workers pulled it. */
  private readonly averages = new Map<number, { value: Promise<Float32Array>; publish: (v: Float32Array) => void; served: number }>();

  constructor(private readonly world: number, private readonly floats: number, private readonly chunkBytes: number) {
    this.sum = new Float32Array(floats);
  }

  private slot(step: number): { value: Promise<Float32Array>; publish: (v: Float32Array) => void; served: number } {
    let s = this.averages.get(step);
    if (!s) {
      let publish!: (v: Float32Array) => void;
      const value = new Promise<Float32Array>((resolve) => (publish = resolve));
      s = { value, publish, served: 0 };
      this.averages.set(step, s);
    }
    return s;
  }

  implementation(): Partial<CoordinatorServer> {
    return {
      pushGradients: clientStreamHandler(async (messages) => {
        let asm: TensorAssembler | undefined;
        let samples = 0;
        let step = 0;
        const scratch = this.freeScratch.pop() ?? new Float32Array(this.floats);
        for await (const msg of messages as AsyncIterable<PushGradientsRequest>) {
          if (msg.payload?.$case === 'header') {
            samples = msg.payload.header.sampleCount;
            step = msg.payload.header.globalStep;
            asm = new TensorAssembler({
              expected: msg.payload.header.tensors.map(specFromProto),
              maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
              into: () => scratch,
            });
          } else if (msg.payload?.$case === 'chunk') {
            asm?.add(msg.payload.chunk);
          }
        }
        const g = (asm as TensorAssembler).finish().get(GRAD_NAME)?.data as Float32Array;
        const sum = this.sum;
        this.samples += samples;
        if (++this.pushes < this.world) {
          addFloatsInto(sum, g);
        } else {
          // Gradient sums divided by the total sample count: the average weighted by samples.
          addAndScale(sum, g, 1 / this.samples);
          this.slot(step).publish(sum);
          this.sum = this.freeSums.pop()?.fill(0) ?? new Float32Array(this.floats);
          this.samples = 0;
          this.pushes = 0;
        }
        this.freeScratch.push(scratch);
        return PushGradientsResponse.fromPartial({ globalStep: step, workersReported: this.pushes });
      }),
      session: duplexStreamHandler((requests) => this.sessionMessages(requests)),
    };
  }

  /** Per SessionReady (naming the step just pushed), the average of that step once it exists. */
  async *sessionMessages(requests: AsyncIterable<SessionRequest>): AsyncGenerator<SessionOrder> {
    for await (const request of requests) {
      if (request.payload?.$case === 'ready') yield* this.averageMessages(request.payload.ready.lastCompletedStep);
    }
  }

  /** Waits for `step`'s average, then sends the assignment and the average's chunks. */
  async *averageMessages(step: number): AsyncGenerator<SessionOrder> {
    const slot = this.slot(step);
    const avg = await slot.value;
    const tensor: WireTensor = { name: GRAD_NAME, dtype: 'float32', shape: [avg.length], data: avg };
    const assignment = StepAssignment.fromPartial({
      kind: StepKind.TRAIN,
      globalStep: step + 1,
      updateKind: UpdateKind.WEIGHTS,
      updateStep: step,
      updateTensors: [specToProto(specOf(tensor))],
    });
    yield { payload: { $case: 'assignment', assignment } };
    for (const chunk of encodeTensor(tensor, { chunkBytes: this.chunkBytes })) yield { payload: { $case: 'chunk', chunk } };
    if (++slot.served === this.world) {
      this.averages.delete(step);
      this.freeSums.push(avg);
    }
  }
}

/** The parameter server on a free port. */
export async function startGrpcExchange(world: number, floats: number, chunkBytes: number): Promise<ExchangeServer> {
  const averager = new Averager(world, floats, chunkBytes);
  const tls = benchTls({ role: 'coordinator', name: '' });
  const server = await startGrpcServer([{ definition: COORDINATOR_SERVICE, implementation: averager.implementation() as CoordinatorServer }],
    { credentials: tls && grpcServerCredentials(tls) });
  return { address: server.address, shutdown: () => server.shutdown(1000) };
}

/** A gRPC worker process: pushes its gradient and reads the average from its session on every "go". */
export async function runGrpcWorker(target: string, rank: number, floats: number, chunkBytes: number): Promise<void> {
  const tls = benchTls({ role: 'worker', name: benchWorkerId(rank) });
  const client = createCoordinatorClient({ target, credentials: tls && grpcChannelCredentials(tls) });
  const average = new Float32Array(floats);
  const tensor: WireTensor = { name: GRAD_NAME, dtype: 'float32', shape: [floats], data: gradientOf(rank, floats) };
  const session = openDuplexCall<SessionRequest, SessionOrder>('Coordinator/Session', {}, (md, o) => client.session(md, o));
  serveExchanges(async (step) => {
    function* messages(): Generator<PushGradientsRequest> {
      yield { payload: { $case: 'header', header: { workerId: `w${rank}`, globalStep: step, configVersion: 1, sampleCount: samplesOf(rank), lossSum: 0, correctCount: 0, correctTop5: 0, microBatchIds: [rank], tensors: [specToProto(specOf(tensor))], statDeltas: [], weightsHash: '', weightsVersion: 0, held: false } } };
      for (const chunk of encodeTensor(tensor, { chunkBytes })) yield { payload: { $case: 'chunk', chunk } };
    }
    const t0 = performance.now();
    await clientStreamCall('Coordinator/PushGradients', { deadlineMs: DEADLINE_MS }, messages(), (md, o, cb) => client.pushGradients(md, o, cb));
    const t1 = performance.now();
    await session.send({ payload: { $case: 'ready', ready: { workerId: `w${rank}`, incarnation: 0, lastCompletedStep: step, configVersion: 1, maxWaitMs: DEADLINE_MS, weightsVersion: 0, reducedKey: '' } } });
    const first = (await session.read(DEADLINE_MS)).payload;
    if (first?.$case !== 'assignment') throw new Error(`expected an assignment, got ${first?.$case}`);
    const t2 = performance.now();
    const asm = new TensorAssembler({ expected: first.assignment.updateTensors.map(specFromProto), into: () => average });
    while (!asm.complete) {
      const p = (await session.read(DEADLINE_MS)).payload;
      if (p?.$case !== 'chunk') throw new Error(`expected a chunk, got ${p?.$case}`);
      asm.add(p.chunk);
    }
    if (process.env.BENCH_DEBUG) console.error(`w${rank} step ${step}: push ${(t1 - t0).toFixed(1)} wait ${(t2 - t1).toFixed(1)} pull ${(performance.now() - t2).toFixed(1)}`);
    return asm.finish().get(GRAD_NAME)?.data as Float32Array;
  }, async () => {
    session.cancel();
    client.close();
  });
}

