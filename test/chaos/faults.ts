/**
 * The seven fault kinds of the chaos suite. Each is caused for real (a signal, a stopped server, a link set
 * down, a filled filesystem), waits for the job to have noticed it where that matters, undoes it the way an
 * operator or Kubernetes would (a recreated pod, a restarted server), and returns only once the job has
 * recovered from it (the worker admitted again, the bus reconnected, a checkpoint written again), so the
 * next fault never lands on a half-healed job. An injection that cannot be made throws, and the run fails;
 * so does a job that ends before the fault recovered (every wait on the coordinator rejects when it exits).
 */
import type { Rng } from '../../common';
import type { ChaosWorker, ChaosWorld } from './chaos-world';

export const FAULT_KINDS = ['kill-worker', 'stop-worker', 'restart-coordinator', 'restart-nats', 'scale', 'cut-network', 'fill-disk'] as const;
/** One of `FAULT_KINDS`. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** How long the coordinator may take to notice a silent worker: its lease plus a slow machine's margin. */
const NOTICE_TIMEOUT_MS = 60_000;
/** How long a recovery may take: a worker process starting (tfjs, data) and being admitted, on a loaded machine. */
const RECOVERY_TIMEOUT_MS = 180_000;

function pick(rng: Rng, workers: readonly ChaosWorker[]): ChaosWorker {
  if (workers.length === 0) throw new Error('no live worker to inject the fault into');
  return workers[rng.int(workers.length)];
}

/** Resolves when the coordinator logs that `id` failed (lease expired, deadline missed). */
function coordinatorDrops(world: ChaosWorld, id: string): Promise<unknown> {
  return world.coordinator.waitForLine(new RegExp(`^worker ${id} failed: `), { onlyNew: true, what: `the coordinator to drop ${id}`, timeoutMs: NOTICE_TIMEOUT_MS });
}

/** Resolves when the coordinator admits `id` to the steps (again); call before the worker can register. */
function coordinatorAdmits(world: ChaosWorld, id: string, onlyNew = true): Promise<unknown> {
  return world.coordinator.waitForLine(new RegExp(`^worker ${id} admitted \\(`), { onlyNew, what: `the coordinator to admit ${id}`, timeoutMs: RECOVERY_TIMEOUT_MS });
}

/**
 * Does `act` while `wait` (begun before it, so that it cannot miss what `act` causes) is pending, and resolves
 * with what `act` returned once both are done. Either failing fails the fault at once, and the other's later
 * rejection (a wait on a coordinator that has exited, say) is handled here: a wait left pending while `act`
 * is awaited alone would reject unhandled and end the whole test process, not fail this test.
 */
async function whileWaiting<A>(wait: Promise<unknown>, act: () => A | Promise<A>): Promise<A> {
  const [, acted] = await Promise.all([wait, (async () => act())()]);
  return acted;
}

/** Injects one fault of `kind`, waits for the job to recover, and returns what was done, in words. */
export async function injectFault(kind: FaultKind, world: ChaosWorld, rng: Rng): Promise<string> {
  switch (kind) {
    case 'kill-worker': {
      const victim = pick(rng, world.liveWorkers());
      victim.child.signal('SIGKILL');
      await victim.child.exited;
      world.retire(victim);
      await whileWaiting(coordinatorAdmits(world, victim.id), () => world.startWorker(victim.id, victim.slot));
      return `SIGKILL ${victim.id}, recreated under the same id and admitted`;
    }
    case 'stop-worker': {
      const victim = pick(rng, world.liveWorkers());
      let stopped = false;
      try {
        await whileWaiting(coordinatorDrops(world, victim.id), () => {
          victim.child.signal('SIGSTOP');
          stopped = true;
        });
      } finally {
        if (stopped) victim.child.signal('SIGCONT');
      }
      await coordinatorAdmits(world, victim.id);
      return `SIGSTOP ${victim.id} until the coordinator dropped it, then SIGCONT; admitted again`;
    }
    case 'restart-coordinator': {
      const live = world.liveWorkers();
      world.coordinator.signal('SIGKILL');
      await world.coordinator.exited;
      await world.startCoordinator();
      // A fresh coordinator's history starts empty: every surviving worker must register and be admitted.
      await Promise.all(live.map((w) => coordinatorAdmits(world, w.id, false)));
      return `SIGKILL the coordinator, restarted on its run directory; ${live.length} workers admitted again`;
    }
    case 'restart-nats': {
      const live = world.liveWorkers();
      const reconnected = live.map((w) => w.child.waitForLine(/event bus reconnected/, { onlyNew: true, what: `${w.id} to reconnect to the bus`, timeoutMs: RECOVERY_TIMEOUT_MS }));
      await whileWaiting(Promise.all(reconnected), async () => {
        await world.stopNats();
        await world.startNats();
      });
      return `nats-server stopped and started again on its port; ${live.length} workers reconnected`;
    }
    case 'scale': {
      const live = world.liveWorkers();
      if (live.length <= 2) {
        const added = await whileWaiting(coordinatorAdmits(world, `worker-${world.nextWorkerSlot}`), () => world.addWorker());
        return `scaled up: ${added.id} added and admitted (${live.length + 1} workers)`;
      }
      const drained = pick(rng, live);
      const left = world.coordinator.waitForLine(new RegExp(`^worker ${drained.id} left`), { onlyNew: true, what: `the coordinator to see ${drained.id} leave`, timeoutMs: NOTICE_TIMEOUT_MS });
      await whileWaiting(left, async () => {
        drained.child.signal('SIGTERM');
        const status = await drained.child.exited;
        if (status.code !== 0) throw new Error(`${drained.id} drained with exit status ${status.code ?? status.signal}, expected 0`);
        world.retire(drained);
      });
      return `scaled down: ${drained.id} drained (${live.length - 1} workers)`;
    }
    case 'cut-network': {
      const victim = pick(rng, world.liveWorkers());
      let cut = false;
      try {
        await whileWaiting(coordinatorDrops(world, victim.id), () => {
          world.network.cut(victim.slot);
          cut = true;
        });
      } finally {
        if (cut) world.network.heal(victim.slot);
      }
      await coordinatorAdmits(world, victim.id);
      return `${victim.id} cut off the network until the coordinator dropped it, then reconnected and admitted again`;
    }
    case 'fill-disk': {
      const failed = world.coordinator.waitForLine(/checkpoint at global step \d+ could not be written, training goes on/, {
        onlyNew: true, what: 'a checkpoint to fail on the full disk', timeoutMs: NOTICE_TIMEOUT_MS,
      });
      let filled = false;
      let bytes = 0;
      try {
        bytes = await whileWaiting(failed, () => {
          const written = world.disk.fill();
          filled = true;
          return written;
        });
      } finally {
        if (filled) world.disk.free();
      }
      await world.coordinator.waitForLine(/^checkpoint .* \((step|epoch end), global step \d+\)$/, { onlyNew: true, what: 'a checkpoint written after the disk was freed', timeoutMs: RECOVERY_TIMEOUT_MS });
      return `checkpoint disk filled (${(bytes / 2 ** 20).toFixed(1)} MiB) until a checkpoint failed, then freed; the next one written`;
    }
  }
}
