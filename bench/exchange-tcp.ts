/**
 * bench/exchange over the TensorChannel, the same parameter-server exchange without gRPC: one
 * length-prefixed frame each way per worker over plain TCP.
 */
import { StreamClosedError, addFloatsInto, TensorChannelServer, WireTensor, WireTensorSpec, connectTensorChannel, specOf, startTensorChannelServer } from '../common';
import { DEADLINE_MS, ExchangeServer, GRAD_NAME, addAndScale, gradientOf, samplesOf, serveExchanges } from './exchange-common';

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
        if (++pushes < world) addFloatsInto(sum, scratch[i]);
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

/** The tcp parameter server on a free port. */
export async function startTcpExchange(world: number, floats: number): Promise<ExchangeServer> {
  const server = await startTensorChannelServer('127.0.0.1', 0, { maxTotalBytes: floats * 4 });
  // Not awaited on shutdown: it never settles if a worker died before connecting. A validation error
  // also fails the workers (their channel closes), which fails the bench.
  serveTcp(server, world, floats).catch((err: unknown) => {
    console.error('tcp server:', err);
    process.exitCode = 1;
  });
  return { address: `127.0.0.1:${server.port}`, shutdown: () => server.close() };
}

/** A tcp worker process: sends its gradient and receives the average on every "go". */
export async function runTcpWorker(target: string, rank: number, floats: number): Promise<void> {
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

