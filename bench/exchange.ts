/**
 * Gradient exchange among W worker processes, each holding a gradient of FLOATS float32; every worker
 * must end with the average weighted by sample count. The figure is the slowest member's own time for
 * one exchange (from its "go" to its average), median of 7 after 2 warm-ups: what gloo_allreduce.py
 * measures too (rank 0's all_reduce plus the division, after a barrier). The `#` line adds the wall time
 * from the first "go" sent to the last "done" received, which includes the fork IPC both ways.
 *
 *   --transport grpc (default): parameter server over loopback gRPC (exchange-grpc.ts).
 *   --transport tcp: the same parameter server over the TensorChannel (exchange-tcp.ts).
 *   --transport ring (or allreduce): common/collective's DataPlane allreduce (exchange-allreduce.ts), with this
 *     process as member 0 the way `--coordinator` says: `observer` (default, what the product's coordinator
 *     is: it only receives the sum, and must end with the average too), `member` (a contributor adding
 *     zeros), `none` (left out: the W workers alone, comparable to gloo).
 *
 *   node --import tsx bench/exchange.ts [--workers 2,4] [--floats 2162880] [--chunk-bytes 1048576]
 *     [--transport grpc|tcp|ring|allreduce] [--coordinator observer|member|none] [--compression none|fp16]
 *
 * `--compression fp16` (ring only): the frames carry IEEE halves (distributed.compression: fp16), and the
 * `#` line gives the payload the bench's observer received per exchange, to compare with `none`.
 *
 * Prints `bench-exchange workers=2 floats=2162880 ms=12.3` per worker count (other transports:
 * `bench-exchange transport=ring coordinator=observer workers=2 …`), then a `#` line with the wall times
 * and the CPU time of all processes per exchange. For comparison, ../shared/peers/gloo_allreduce.py times a
 * PyTorch gloo allreduce of the same size. BENCH_DEBUG=1 prints each worker's push / wait / pull times
 * (grpc, tcp); NODE_OPTIONS (--cpu-prof, --trace-gc) reaches the worker processes too.
 */
import { ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { decodeFp16, encodeFp16, type AllreduceCompression } from '../common';
import { ExchangeServer, FromWorker, ToWorker, expectedChecksum } from './exchange-common';
import { runGrpcWorker, startGrpcExchange } from './exchange-grpc';
import { COORDINATOR_MODES, CoordinatorMode, runAllreduceWorker, startAllreduceExchange } from './exchange-allreduce';
import { runTcpWorker, startTcpExchange } from './exchange-tcp';
import { prepareBenchTls } from './exchange-tls';

const WARMUP = 2;
const MEASURED = 7;

const TRANSPORTS = ['grpc', 'tcp', 'ring', 'allreduce'] as const;
type Transport = (typeof TRANSPORTS)[number];

interface Args {
  workers: number[];
  floats: number;
  chunkBytes: number;
  transport: Transport;
  /** Ring only: the bench process's part in the allreduce (the coordinator's place in the product). */
  coordinator: CoordinatorMode;
  /** Ring only: the data plane's frames. */
  compression?: AllreduceCompression;
  /** Mutual TLS on the data plane / gRPC (exchange-tls.ts); tcp stays plaintext. */
  tls: boolean;
}

function parseArgs(argv: string[]): Args {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const parsed = parseTransport(get('--transport') ?? 'grpc');
  const transport = parsed === 'allreduce' ? 'ring' : parsed;
  const coordinator = get('--coordinator') ?? 'observer';
  if (!(COORDINATOR_MODES as readonly string[]).includes(coordinator)) {
    throw new Error(`--coordinator: expected ${COORDINATOR_MODES.join(', ')}, got '${coordinator}'`);
  }
  if (get('--coordinator') !== undefined && transport !== 'ring') throw new Error(`--coordinator: only for --transport ring, got --transport ${transport}`);
  const compression = get('--compression') ?? 'none';
  if (compression !== 'none' && compression !== 'fp16') throw new Error(`--compression: expected none or fp16, got '${compression}'`);
  if (compression === 'fp16' && transport !== 'ring') throw new Error(`--compression fp16: only for --transport ring, got --transport ${transport}`);
  return {
    workers: (get('--workers') ?? '2,4').split(',').map(Number),
    floats: Number(get('--floats') ?? 2_162_880),
    chunkBytes: Number(get('--chunk-bytes') ?? 1024 * 1024),
    transport,
    coordinator: coordinator as CoordinatorMode,
    compression: compression === 'fp16' ? { type: 'fp16', prescale: 1 } : undefined,
    tls: argv.includes('--tls'),
  };
}

function parseTransport(value: string): Transport {
  if (!(TRANSPORTS as readonly string[]).includes(value)) throw new Error(`--transport: expected ${TRANSPORTS.join(', ')}, got '${value}'`);
  return value as Transport;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median times of one exchange, and the median CPU time all processes spent on it. */
interface ExchangeTimes {
  /** The slowest member's own time (go received to average ready), like gloo's script (rank 0's, after a barrier). */
  memberMs: number;
  /** From the first "go" sent to the last "done" received: adds the fork IPC's latency both ways. */
  wallMs: number;
  minWallMs: number;
  cpuMs: number;
  /** Payload the bench process's member received in the last exchange, where it takes part. */
  receivedBytes?: number;
}

function startServer(args: Args, world: number): Promise<ExchangeServer> {
  if (args.transport === 'grpc') return startGrpcExchange(world, args.floats, args.chunkBytes);
  if (args.transport === 'tcp') return startTcpExchange(world, args.floats);
  return startAllreduceExchange(args.floats, args.coordinator, args.compression);
}

/** Whether `got` is `want` within float32 rounding of the averages (fp16's: halves keep 11 bits). */
const close = (got: number, want: number, tolerance = 1e-3): boolean => Math.abs(got - want) <= tolerance * Math.max(1, Math.abs(want));

async function benchWorld(args: Args, world: number): Promise<ExchangeTimes> {
  const { transport, floats, chunkBytes } = args;
  const server = await startServer(args, world);
  const want = expectedChecksum(world, floats);
  const tolerance = args.compression ? 4e-3 : 1e-3;
  const children: ChildProcess[] = [];
  for (let r = 0; r < world; r++) {
    children.push(fork(__filename, ['--worker', transport, server.address, String(r), String(floats), String(chunkBytes)], { execArgv: ['--import', 'tsx'] }));
  }
  try {
    await server.connect?.(children);
    await Promise.all(children.map((c) => once(c, 'message')));
    const times: number[] = [];
    const memberTimes: number[] = [];
    const cpuTimes: number[] = [];
    for (let step = 0; step < WARMUP + MEASURED; step++) {
      const done = children.map((c) => new Promise<FromWorker>((resolve, reject) => {
        c.once('message', resolve);
        c.once('exit', (code) => reject(new Error(`worker exited with code ${code}`)));
      }));
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (const c of children) c.send({ type: 'go', step } satisfies ToWorker);
      const own = server.exchange?.(step).then((sum) => ({ sum, ms: performance.now() - t0 }));
      const [replies, ownResult] = await Promise.all([Promise.all(done), own]);
      const ms = performance.now() - t0;
      const ownChecksum = ownResult?.sum;
      let memberMs = ownResult?.ms ?? 0;
      const cpu = process.cpuUsage(cpu0);
      let cpuMs = (cpu.user + cpu.system) / 1000;
      for (const r of replies) {
        if (r.type !== 'done' || !close(r.checksum, want, tolerance)) {
          throw new Error(`step ${step}: expected the weighted average (checksum ${want}), a worker got ${JSON.stringify(r)}`);
        }
        cpuMs += r.cpuMs;
        memberMs = Math.max(memberMs, r.ms);
      }
      if (ownChecksum !== undefined && !close(ownChecksum, want, tolerance)) {
        throw new Error(`step ${step}: expected the weighted average (checksum ${want}), the bench's own member got ${ownChecksum}`);
      }
      for (const c of children) c.removeAllListeners('exit');
      if (step >= WARMUP) {
        times.push(ms);
        memberTimes.push(memberMs);
        cpuTimes.push(cpuMs);
      }
    }
    return { memberMs: median(memberTimes), wallMs: median(times), minWallMs: Math.min(...times), cpuMs: median(cpuTimes),
      receivedBytes: server.receivedBytes?.() };
  } finally {
    for (const c of children) if (c.connected) c.send({ type: 'exit' } satisfies ToWorker);
    await Promise.all(children.map((c) => (c.exitCode === null ? once(c, 'exit') : undefined)));
    await server.shutdown();
  }
}

/** Median ms of `run` over 7 calls after 2 warm-ups. */
function timeIt(run: () => void): number {
  const times: number[] = [];
  for (let i = 0; i < WARMUP + MEASURED; i++) {
    const t0 = performance.now();
    run();
    if (i >= WARMUP) times.push(performance.now() - t0);
  }
  return median(times);
}

/** The fp16 kernels alone on one gradient: what each member spends converting, beside the exchange's time. */
function kernelLine(floats: number): string {
  const values = Float32Array.from({ length: floats }, (_, i) => Math.sin(i) * 10 ** ((i % 7) - 4));
  const halves = new Uint16Array(floats);
  const encodeMs = timeIt(() => encodeFp16(values, halves, 1));
  const encodeScaledMs = timeIt(() => encodeFp16(values, halves, 4));
  const decodeMs = timeIt(() => decodeFp16(halves, values, 0.25));
  return `#   fp16 kernels on ${floats} floats (one thread): encode ${encodeMs.toFixed(1)} ms (prescaled ${encodeScaledMs.toFixed(1)} ms), ` +
    `decode with postscale ${decodeMs.toFixed(1)} ms`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--worker') {
    const [, transport, target, rank, floats, chunkBytes] = argv;
    if (transport === 'tcp') await runTcpWorker(target, Number(rank), Number(floats));
    else if (transport === 'ring') await runAllreduceWorker(Number(rank), Number(floats));
    else await runGrpcWorker(target, Number(rank), Number(floats), Number(chunkBytes));
    return;
  }
  const args = parseArgs(argv);
  if (args.tls && args.transport === 'tcp') throw new Error('--tls: only for --transport ring or grpc');
  if (args.compression) console.log(kernelLine(args.floats));
  const cleanup = args.tls ? await prepareBenchTls(Math.max(...args.workers)) : () => undefined;
  try {
    await benchAll(args);
  } finally {
    cleanup();
  }
}

async function benchAll(args: Args): Promise<void> {
  for (const w of args.workers) {
    const t = await benchWorld(args, w);
    const ring = args.transport === 'ring' ? `coordinator=${args.coordinator} ${args.compression ? 'compression=fp16 ' : ''}` : '';
    const label = args.transport === 'grpc' ? '' : `transport=${args.transport} ${ring}`;
    console.log(`bench-exchange ${label}tls=${args.tls ? 'on' : 'off'} workers=${w} floats=${args.floats} ms=${t.memberMs.toFixed(1)}`);
    // Wall time swings with whatever else the machine runs; CPU time of all processes does much less.
    const framing = args.transport === 'grpc' ? `chunk ${args.chunkBytes} bytes`
      : args.transport === 'tcp' ? 'one frame per tensor set'
        : args.coordinator === 'none' ? `allreduce among the ${w} workers alone`
          : `allreduce among ${w + 1}: this process is member 0, ${args.coordinator === 'member' ? 'a contributor adding zeros' : 'an observer'}`;
    console.log(`#   ms: the slowest member's own time; with the IPC go/done round trip ${t.wallMs.toFixed(1)} ms ` +
      `(min ${t.minWallMs.toFixed(1)}), cpu ${t.cpuMs.toFixed(1)} ms (all processes), ${framing}` +
      (t.receivedBytes ? `; the observer received ${t.receivedBytes} payload bytes per exchange` : ''));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
