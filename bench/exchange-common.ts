/**
 * What every bench/exchange transport shares: the workers' deterministic gradients and sample counts,
 * the checksum the bench compares, the numeric loops of the parameter server, and the worker loop that
 * answers the bench's "go" messages over the fork IPC channel.
 */
import { ChildProcess } from 'node:child_process';
import type { AllreduceMember } from '../common';

export const GRAD_NAME = 'gradient';
export const DEADLINE_MS = 60_000;


/** Messages between the bench and its worker processes (over the fork IPC channel). */
export type ToWorker =
  | { type: 'go'; step: number }
  | { type: 'exit' }
  | { type: 'ring'; members: AllreduceMember[]; rank: number };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'listening'; address: string }
  /** `ms`: the exchange timed inside the worker, from its "go" to its average (as gloo's script times rank 0). */
  | { type: 'done'; step: number; checksum: number; cpuMs: number; ms: number };

/** The bench process's side of one transport. */
export interface ExchangeServer {
  /** Given to every worker process on its command line. */
  address: string;
  /** Once the workers are forked and before they are ready (the allreduce tells each worker the members). */
  connect?(workers: ChildProcess[]): Promise<void>;
  /** The bench process's own part in step `step`, beside the workers' (the allreduce's coordinator member): its result's checksum. */
  exchange?(step: number): Promise<number>;
  shutdown(): Promise<void>;
}

/** Worker `rank`'s gradient sum: deterministic, so the bench can check the average it gets back. */
export function gradientOf(rank: number, floats: number): Float32Array {
  const g = new Float32Array(floats);
  for (let i = 0; i < floats; i++) g[i] = ((i * 2654435761 + rank * 97) % 1000) / 1000 - 0.5 + rank;
  return g;
}

/** Samples behind worker `rank`'s gradient: unequal on purpose, so the average must be weighted. */
export const samplesOf = (rank: number): number => 8 + rank * 4;

/** A cheap fingerprint of a tensor, equal only if the values are (nearly) equal. */
export function checksum(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i += 997) s += a[i] * ((i % 13) + 1);
  return s;
}

/** The checksum of the weighted average of `world` workers' gradients, what every exchange must yield. */
export function expectedChecksum(world: number, floats: number): number {
  const expected = new Float32Array(floats);
  let total = 0;
  for (let r = 0; r < world; r++) {
    const g = gradientOf(r, floats);
    for (let i = 0; i < floats; i++) expected[i] += g[i];
    total += samplesOf(r);
  }
  for (let i = 0; i < floats; i++) expected[i] /= total;
  return checksum(expected);
}

// The sum loop is the product's (common/collective addFloatsInto); this one folds in the division.
/** sum = (sum + g) * factor: the last worker's gradient and the division by the sample count in one pass. */
export function addAndScale(sum: Float32Array, g: Float32Array, factor: number): void {
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

/** a *= factor */
export function scaleInPlace(a: Float32Array, factor: number): void {
  const n = a.length;
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    a[i] *= factor;
    a[i + 1] *= factor;
    a[i + 2] *= factor;
    a[i + 3] *= factor;
  }
  for (; i < n; i++) a[i] *= factor;
}

/**
 * The worker side of the bench, whatever the transport: on each "go" from the parent it runs one exchange
 * (push its gradient, pull the average into `average`) and reports the checksum and CPU time; on "exit" it
 * closes the transport and disconnects.
 */
export function serveExchanges(exchange: (step: number) => Promise<Float32Array>, close: () => Promise<void>): void {
  const send = (m: FromWorker): void => void process.send?.(m);
  process.on('message', (m: ToWorker) => {
    if (m.type === 'exit') {
      void close().then(() => process.disconnect());
      return;
    }
    if (m.type !== 'go') return;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    exchange(m.step)
      .then((avg) => {
        const ms = performance.now() - t0;
        const cpu = process.cpuUsage(cpu0);
        send({ type: 'done', step: m.step, checksum: checksum(avg), cpuMs: (cpu.user + cpu.system) / 1000, ms });
      })
      .catch((err: unknown) => {
        console.error('worker:', err);
        process.exit(1);
      });
  });
  send({ type: 'ready' });
}
