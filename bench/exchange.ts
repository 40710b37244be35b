/**
 * Gradient exchange over loopback gRPC: W worker processes each push a gradient of FLOATS float32
 * (PushGradients, chunked), the server (this process) reassembles and validates each, averages them
 * weighted by sample count, and every worker pulls the average back (PullStep) and reassembles it.
 * The figure is the wall time of one whole exchange, from the "go" to the last worker holding the
 * average, median of 7 after 2 warm-ups. `--transport tcp` does the same exchange over the prototype
 * TensorChannel (one length-prefixed frame each way per worker over plain TCP) instead of gRPC.
 *
 *   node --import tsx bench/exchange.ts [--workers 2,4] [--floats 2162880] [--chunk-bytes 1048576] [--transport grpc|tcp]
 *
 * Prints `bench-exchange workers=2 floats=2162880 ms=12.3` per worker count (with tcp:
 * `bench-exchange transport=tcp workers=2 …`), then a `#` line with the fastest exchange and the CPU
 * time of all processes per exchange. For comparison,
 * ../shared/peers/gloo_allreduce.py times a PyTorch gloo allreduce of the same size.
 * BENCH_DEBUG=1 prints each worker's push / wait / pull times; NODE_OPTIONS (--cpu-prof, --trace-gc)
 * reaches the worker processes too.
 */
import { ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import {
  COORDINATOR_SERVICE,
  DEFAULT_MAX_MESSAGE_BYTES,
  StreamClosedError,
  TensorAssembler,
  TensorChannelServer,
  WireTensor,
  WireTensorSpec,
  clientStreamCall,
  clientStreamHandler,
  connectTensorChannel,
  createCoordinatorClient,
  encodeTensor,
  serverStreamCall,
  serverStreamHandler,
  specFromProto,
  specOf,
  specToProto,
  startGrpcServer,
  startTensorChannelServer,
} from '../common';
import {
  CoordinatorServer,
  PullStepResponse,
  PushGradientsRequest,
  PushGradientsResponse,
  StepAssignment,
  StepKind,
  UpdateKind,
} from '../proto';

const WARMUP = 2;
const MEASURED = 7;
const GRAD_NAME = 'gradient';
const DEADLINE_MS = 60_000;

/** Messages between the bench and its worker processes (over the fork IPC channel). */
type ToWorker = { type: 'go'; step: number } | { type: 'exit' };
type FromWorker = { type: 'ready' } | { type: 'done'; step: number; checksum: number; cpuMs: number };

const TRANSPORTS = ['grpc', 'tcp'] as const;
type Transport = (typeof TRANSPORTS)[number];

interface Args {
  workers: number[];
  floats: number;
  chunkBytes: number;
  transport: Transport;
}

function parseArgs(argv: string[]): Args {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    workers: (get('--workers') ?? '2,4').split(',').map(Number),
    floats: Number(get('--floats') ?? 2_162_880),
    chunkBytes: Number(get('--chunk-bytes') ?? 1024 * 1024),
    transport: parseTransport(get('--transport') ?? 'grpc'),
  };
}

function parseTransport(value: string): Transport {
  if (!(TRANSPORTS as readonly string[]).includes(value)) throw new Error(`--transport: expected grpc or tcp, got '${value}'`);
  return value as Transport;
}

/** Worker `rank`'s gradient sum: deterministic, so the bench can check the average it gets back. */
function gradientOf(rank: number, floats: number): Float32Array {
  const g = new Float32Array(floats);
  for (let i = 0; i < floats; i++) g[i] = ((i * 2654435761 + rank * 97) % 1000) / 1000 - 0.5 + rank;
  return g;
}

/** Samples behind worker `rank`'s gradient: unequal on purpose, so the average must be weighted. */
const samplesOf = (rank: number): number => 8 + rank * 4;

/** A cheap fingerprint of a tensor, equal only if the values are (nearly) equal. */
function checksum(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i += 997) s += a[i] * ((i % 13) + 1);
  return s;
}

// Numeric loops live in small functions of their own, unrolled by 4: V8 does not vectorise, and this
// halves the loop overhead (2.3 ms -> 1.35 ms for 2.16 M floats here).
/** sum += g */
function addInto(sum: Float32Array, g: Float32Array): void {
  const n = sum.length;
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    sum[i] += g[i];
    sum[i + 1] += g[i + 1];
    sum[i + 2] += g[i + 2];
    sum[i + 3] += g[i + 3];
  }
  for (; i < n; i++) sum[i] += g[i];
}

/** sum = (sum + g) * factor: the last worker's gradient and the division by the sample count in one pass. */
function addAndScale(sum: Float32Array, g: Float32Array, factor: number): void {
  const n = sum.length;
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    sum[i] = (sum[i] + g[i]) * factor;
    sum[i + 1] = (sum[i + 1] + g[i + 1]) * factor;
    sum[i + 2] = (sum[i + 2] + g[i + 2]) * factor;
    sum[i + 3] = (sum[i + 3] + g[i + 3]) * factor;
  }
  for (; i < n; i++) sum[i] = (sum[i] + g[i]) * factor;
}

/** The server side: gathers W pushes per step, averages, serves the average to every PullStep. */
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
          addInto(sum, g);
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
      pullStep: serverStreamHandler((req) => this.pullMessages(req.lastCompletedStep)),
    };
  }

  /** Waits for `step`'s average, then sends the assignment and the average's chunks. */
  async *pullMessages(step: number): AsyncGenerator<PullStepResponse> {
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

/**
 * The tcp server side: accepts W channels, then per step receives every push (each into its own warm
 * buffer), averages in arrival order exactly as the gRPC Averager does, and sends the average back on
 * every channel. Returns once the workers close their channels.
 */
async function serveTcp(server: TensorChannelServer, world: number, floats: number): Promise<void> {
  const channels = await Promise.all(Array.from({ length: world }, () => server.accept()));
  const scratch = channels.map(() => new Float32Array(floats));
  const sum = new Float32Array(floats);
  const expected: WireTensorSpec[] = [{ name: GRAD_NAME, dtype: 'float32', shape: [floats] }];
  const average: WireTensor = { ...expected[0], data: sum };
  try {
    for (;;) {
      sum.fill(0);
      let samples = 0;
      let pushes = 0;
      let step = 0;
      await Promise.all(channels.map(async (ch, i) => {
        const frame = await ch.receive({ expected, into: () => scratch[i] });
        samples += Number(frame.meta.samples);
        step = Number(frame.meta.step);
        if (++pushes < world) addInto(sum, scratch[i]);
        else addAndScale(sum, scratch[i], 1 / samples);
      }));
      await Promise.all(channels.map((ch) => ch.send([average], { step })));
    }
  } catch (err) {
    if (!(err instanceof StreamClosedError)) throw err;
  } finally {
    await Promise.all(channels.map((ch) => ch.close()));
  }
}

/**
 * The worker side of the bench, whatever the transport: on each "go" from the parent it runs one exchange
 * (push its gradient, pull the average into `average`) and reports the checksum and CPU time; on "exit" it
 * closes the transport and disconnects.
 */
function serveExchanges(exchange: (step: number) => Promise<Float32Array>, close: () => Promise<void>): void {
  const send = (m: FromWorker): void => void process.send?.(m);
  process.on('message', (m: ToWorker) => {
    if (m.type === 'exit') {
      void close().then(() => process.disconnect());
      return;
    }
    const cpu0 = process.cpuUsage();
    exchange(m.step)
      .then((avg) => {
        const cpu = process.cpuUsage(cpu0);
        send({ type: 'done', step: m.step, checksum: checksum(avg), cpuMs: (cpu.user + cpu.system) / 1000 });
      })
      .catch((err: unknown) => {
        console.error('worker:', err);
        process.exit(1);
      });
  });
  send({ type: 'ready' });
}

async function runTcpWorker(target: string, rank: number, floats: number): Promise<void> {
  const [host, port] = target.split(':');
  const channel = await connectTensorChannel(host, Number(port));
  const average = new Float32Array(floats);
  const tensor: WireTensor = { name: GRAD_NAME, dtype: 'float32', shape: [floats], data: gradientOf(rank, floats) };
  const expected: WireTensorSpec[] = [specOf(tensor)];
  serveExchanges(async (step) => {
    const t0 = performance.now();
    await channel.send([tensor], { step, samples: samplesOf(rank) });
    const t1 = performance.now();
    const frame = await channel.receive({ expected, into: () => average, timeoutMs: DEADLINE_MS });
    if (process.env.BENCH_DEBUG) console.error(`w${rank} step ${step}: push ${(t1 - t0).toFixed(1)} wait+pull ${(performance.now() - t1).toFixed(1)}`);
    return frame.tensors.get(GRAD_NAME)?.data as Float32Array;
  }, () => channel.close());
}

async function runWorker(target: string, rank: number, floats: number, chunkBytes: number): Promise<void> {
  const client = createCoordinatorClient({ target });
  const average = new Float32Array(floats);
  const tensor: WireTensor = { name: GRAD_NAME, dtype: 'float32', shape: [floats], data: gradientOf(rank, floats) };
  serveExchanges(async (step) => {
    function* messages(): Generator<PushGradientsRequest> {
      yield { payload: { $case: 'header', header: { workerId: `w${rank}`, globalStep: step, configVersion: 1, sampleCount: samplesOf(rank), lossSum: 0, correctCount: 0, correctTop5: 0, microBatchIds: [rank], tensors: [specToProto(specOf(tensor))], statDeltas: [], weightsHash: '', weightsVersion: 0 } } };
      for (const chunk of encodeTensor(tensor, { chunkBytes })) yield { payload: { $case: 'chunk', chunk } };
    }
    const t0 = performance.now();
    await clientStreamCall('Coordinator/PushGradients', { deadlineMs: DEADLINE_MS }, messages(), (md, o, cb) => client.pushGradients(md, o, cb));
    const t1 = performance.now();
    let t2 = 0;
    let asm: TensorAssembler | undefined;
    for await (const msg of serverStreamCall('Coordinator/PullStep', { deadlineMs: DEADLINE_MS }, (md, o) =>
      client.pullStep({ workerId: `w${rank}`, lastCompletedStep: step, configVersion: 1, maxWaitMs: DEADLINE_MS, weightsVersion: 0 }, md, o))) {
      if (msg.payload?.$case === 'assignment') {
        t2 = performance.now();
        asm = new TensorAssembler({ expected: msg.payload.assignment.updateTensors.map(specFromProto), into: () => average });
      } else if (msg.payload?.$case === 'chunk') asm?.add(msg.payload.chunk);
    }
    if (process.env.BENCH_DEBUG) console.error(`w${rank} step ${step}: push ${(t1 - t0).toFixed(1)} wait ${(t2 - t1).toFixed(1)} pull ${(performance.now() - t2).toFixed(1)}`);
    return (asm as TensorAssembler).finish().get(GRAD_NAME)?.data as Float32Array;
  }, async () => client.close());
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median wall time of one exchange, and the median CPU time all processes spent on it. */
interface ExchangeTimes {
  wallMs: number;
  minWallMs: number;
  cpuMs: number;
}

/** The server side of one transport: where workers connect, and how to stop it. */
interface ExchangeServer {
  address: string;
  shutdown(): Promise<void>;
}

async function startServer(transport: Transport, world: number, floats: number, chunkBytes: number): Promise<ExchangeServer> {
  if (transport === 'grpc') {
    const averager = new Averager(world, floats, chunkBytes);
    const server = await startGrpcServer([{ definition: COORDINATOR_SERVICE, implementation: averager.implementation() as CoordinatorServer }]);
    return { address: server.address, shutdown: () => server.shutdown(1000) };
  }
  const server = await startTensorChannelServer('127.0.0.1', 0, { maxTotalBytes: floats * 4 });
  // Not awaited on shutdown: it never settles if a worker died before connecting. A validation error
  // also fails the workers (their channel closes), which fails the bench.
  serveTcp(server, world, floats).catch((err: unknown) => {
    console.error('tcp server:', err);
    process.exitCode = 1;
  });
  return { address: `127.0.0.1:${server.port}`, shutdown: () => server.close() };
}

async function benchWorld(transport: Transport, world: number, floats: number, chunkBytes: number): Promise<ExchangeTimes> {
  const server = await startServer(transport, world, floats, chunkBytes);
  const expected = new Float32Array(floats);
  let total = 0;
  for (let r = 0; r < world; r++) {
    const g = gradientOf(r, floats);
    for (let i = 0; i < floats; i++) expected[i] += g[i];
    total += samplesOf(r);
  }
  for (let i = 0; i < floats; i++) expected[i] /= total;
  const want = checksum(expected);

  const children: ChildProcess[] = [];
  for (let r = 0; r < world; r++) {
    children.push(fork(__filename, ['--worker', transport, server.address, String(r), String(floats), String(chunkBytes)], { execArgv: ['--import', 'tsx'] }));
  }
  try {
    await Promise.all(children.map((c) => once(c, 'message')));
    const times: number[] = [];
    const cpuTimes: number[] = [];
    for (let step = 0; step < WARMUP + MEASURED; step++) {
      const done = children.map((c) => new Promise<FromWorker>((resolve, reject) => {
        c.once('message', resolve);
        c.once('exit', (code) => reject(new Error(`worker exited with code ${code}`)));
      }));
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (const c of children) c.send({ type: 'go', step } satisfies ToWorker);
      const replies = await Promise.all(done);
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      let cpuMs = (cpu.user + cpu.system) / 1000;
      for (const r of replies) {
        if (r.type !== 'done' || Math.abs(r.checksum - want) > 1e-3 * Math.max(1, Math.abs(want))) {
          throw new Error(`step ${step}: expected the weighted average (checksum ${want}), a worker got ${JSON.stringify(r)}`);
        }
        cpuMs += r.cpuMs;
      }
      for (const c of children) c.removeAllListeners('exit');
      if (step >= WARMUP) {
        times.push(ms);
        cpuTimes.push(cpuMs);
      }
    }
    return { wallMs: median(times), minWallMs: Math.min(...times), cpuMs: median(cpuTimes) };
  } finally {
    for (const c of children) if (c.connected) c.send({ type: 'exit' } satisfies ToWorker);
    await Promise.all(children.map((c) => (c.exitCode === null ? once(c, 'exit') : undefined)));
    await server.shutdown();
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--worker') {
    if (argv[1] === 'tcp') await runTcpWorker(argv[2], Number(argv[3]), Number(argv[4]));
    else await runWorker(argv[2], Number(argv[3]), Number(argv[4]), Number(argv[5]));
    return;
  }
  const args = parseArgs(argv);
  for (const w of args.workers) {
    const t = await benchWorld(args.transport, w, args.floats, args.chunkBytes);
    const label = args.transport === 'grpc' ? '' : `transport=${args.transport} `;
    console.log(`bench-exchange ${label}workers=${w} floats=${args.floats} ms=${t.wallMs.toFixed(1)}`);
    // Wall time swings with whatever else the machine runs; CPU time of all processes does much less.
    const framing = args.transport === 'grpc' ? `chunk ${args.chunkBytes} bytes` : 'one frame per tensor set';
    console.log(`#   min ${t.minWallMs.toFixed(1)} ms, cpu ${t.cpuMs.toFixed(1)} ms (server + workers), ${framing}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
