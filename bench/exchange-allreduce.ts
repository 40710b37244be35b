/**
 * bench/exchange over the allreduce (common/collective): the W workers and, unless `--coordinator none`,
 * the bench process itself as member 0: an observer that only receives the sum (what the product's
 * coordinator is: it needs the sum for its own replica) or, with `--coordinator member`, a contributor
 * adding zeros. Every member allreduces [gradient sum, sample count] in place (one float more than the
 * gradient, so nobody needs to be told the total), then divides by the reduced sample count: the
 * weighted average, identical bytes at every member.
 */
import { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { DataPlane, AllreduceCompression, AllreduceMember, AllreduceRequest } from '../common';
import { benchTls, benchWorkerId } from './exchange-tls';
import { DEADLINE_MS, ExchangeServer, FromWorker, ToWorker, checksum, gradientOf, samplesOf, scaleInPlace, serveExchanges } from './exchange-common';

/** The bench process's part in the allreduce: see the file comment. */
export const COORDINATOR_MODES = ['observer', 'member', 'none'] as const;
/** One of `COORDINATOR_MODES`. */
export type CoordinatorMode = (typeof COORDINATOR_MODES)[number];

/** The reduction of step `step`; `rank` is this member's index in `members`. */
function reductionOf(step: number, members: AllreduceMember[], rank: number, compression?: AllreduceCompression): AllreduceRequest {
  return { key: `bench-exchange/w${members.length}/step-${step}`, members, rank, timeoutMs: DEADLINE_MS, compression };
}

/** Allreduces `work` (gradient, then sample count) and turns it into the weighted average in place. */
async function averageInPlace(plane: DataPlane, reduction: AllreduceRequest, work: Float32Array): Promise<{ average: Float32Array; receivedBytes: number }> {
  const stats = await plane.allreduce(reduction, work);
  const floats = work.length - 1;
  const average = work.subarray(0, floats);
  scaleInPlace(average, 1 / work[floats]);
  return { average, receivedBytes: stats.bytesReceived };
}

/**
 * The bench's side: tells every worker the members once they listen, and (as member 0 unless
 * `coordinator` is 'none') takes part in every step, as an observer or with zeros.
 */
export async function startAllreduceExchange(floats: number, coordinator: CoordinatorMode, compression?: AllreduceCompression): Promise<ExchangeServer> {
  const plane = coordinator === 'none' ? undefined : await DataPlane.listen({ tls: benchTls({ role: 'coordinator', name: '' }) });
  let members: AllreduceMember[] = [];
  let received = 0;
  const work = new Float32Array(floats + 1);
  return {
    address: 'ring',
    connect: async (workers: ChildProcess[]) => {
      const listening = await Promise.all(workers.map(async (w) => ((await once(w, 'message')) as [FromWorker])[0]));
      const ws = listening.map((m, i): AllreduceMember => {
        if (m.type !== 'listening') throw new Error(`worker ${i}: expected its data plane address, got ${JSON.stringify(m)}`);
        return { id: benchWorkerId(i), address: m.address };
      });
      const role = coordinator === 'observer' ? 'observer' : 'contributor';
      members = plane ? [{ id: 'coordinator', address: plane.address, role }, ...ws] : ws;
      const offset = plane ? 1 : 0;
      workers.forEach((w, i) => w.send({ type: 'ring', members, rank: i + offset, compression } satisfies ToWorker));
    },
    exchange: plane
      ? async (step: number) => {
        const { average, receivedBytes } = await averageInPlace(plane, reductionOf(step, members, 0, compression), work);
        received = receivedBytes;
        const sum = checksum(average);
        // An observer's input is ignored; a contributor's must be zeros again for the next step.
        if (coordinator === 'member') setImmediate(() => work.fill(0));
        return sum;
      }
      : undefined,
    receivedBytes: () => received,
    shutdown: async () => plane?.close(),
  };
}

/** A worker process: its gradient (rank = its worker index) allreduced on every "go". */
export async function runAllreduceWorker(rank: number, floats: number): Promise<void> {
  const plane = await DataPlane.listen({ tls: benchTls({ role: 'worker', name: benchWorkerId(rank) }) });
  process.send?.({ type: 'listening', address: plane.address } satisfies FromWorker);
  const [ring] = (await once(process, 'message')) as [ToWorker];
  if (ring.type !== 'ring') throw new Error(`expected the members, got ${JSON.stringify(ring)}`);
  const gradient = gradientOf(rank, floats);
  // The allreduce overwrites its input, so the gradient is copied back after every step, once its
  // checksum is taken and outside the timed exchange (the product allreduces a fresh gradient each step).
  const work = new Float32Array(floats + 1);
  const refill = (): void => {
    work.set(gradient);
    work[floats] = samplesOf(rank);
  };
  refill();
  serveExchanges(async (step) => {
    const { average } = await averageInPlace(plane, reductionOf(step, ring.members, ring.rank, ring.compression), work);
    setImmediate(refill);
    return average;
  }, () => plane.close());
}
