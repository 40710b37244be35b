/**
 * The seven fault kinds of the chaos suite. Each is caused for real (a signal, a stopped server, a link set
 * down, a filled filesystem), waits for the job to have noticed it where that matters, and undoes it the
 * way an operator or Kubernetes would (a recreated pod, a restarted server). An injection that cannot be
 * made throws, and the run fails.
 */
import type { Rng } from '../../common';
import type { ChaosWorker, ChaosWorld } from './chaos-world';

export const FAULT_KINDS = ['kill-worker', 'stop-worker', 'restart-coordinator', 'restart-nats', 'scale', 'cut-network', 'fill-disk'] as const;
/** One of `FAULT_KINDS`. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** How long the coordinator may take to notice a silent worker: its lease plus a slow machine's margin. */
const NOTICE_TIMEOUT_MS = 60_000;

function pick(rng: Rng, workers: readonly ChaosWorker[]): ChaosWorker {
  if (workers.length === 0) throw new Error('no live worker to inject the fault into');
  return workers[rng.int(workers.length)];
}

/** Resolves when the coordinator logs that `id` failed (lease expired, deadline missed). */
function coordinatorDrops(world: ChaosWorld, id: string): Promise<unknown> {
  return world.coordinator.waitForLine(new RegExp(`worker ${id} failed: `), { onlyNew: true, what: `the coordinator to drop ${id}`, timeoutMs: NOTICE_TIMEOUT_MS });
}

/** Injects one fault of `kind` and returns what was done, in words. */
export async function injectFault(kind: FaultKind, world: ChaosWorld, rng: Rng): Promise<string> {
  switch (kind) {
    case 'kill-worker': {
      const victim = pick(rng, world.liveWorkers());
      victim.child.signal('SIGKILL');
      await victim.child.exited;
      world.retire(victim);
      await world.startWorker(victim.id, victim.slot);
      return `SIGKILL ${victim.id}, recreated under the same id`;
    }
    case 'stop-worker': {
      const victim = pick(rng, world.liveWorkers());
      const dropped = coordinatorDrops(world, victim.id);
      victim.child.signal('SIGSTOP');
      try {
        await dropped;
      } finally {
        victim.child.signal('SIGCONT');
      }
      return `SIGSTOP ${victim.id} until the coordinator dropped it, then SIGCONT`;
    }
    case 'restart-coordinator': {
      world.coordinator.signal('SIGKILL');
      await world.coordinator.exited;
      await world.startCoordinator();
      return 'SIGKILL the coordinator, restarted on its run directory';
    }
    case 'restart-nats': {
      await world.stopNats();
      await world.startNats();
      return 'nats-server stopped and started again on its port';
    }
    case 'scale': {
      const live = world.liveWorkers();
      if (live.length <= 2) {
        const added = await world.addWorker();
        return `scaled up: ${added.id} added (${live.length + 1} workers)`;
      }
      const drained = pick(rng, live);
      drained.child.signal('SIGTERM');
      const status = await drained.child.exited;
      if (status.code !== 0) throw new Error(`${drained.id} drained with exit status ${status.code ?? status.signal}, expected 0`);
      world.retire(drained);
      return `scaled down: ${drained.id} drained (${live.length - 1} workers)`;
    }
    case 'cut-network': {
      const victim = pick(rng, world.liveWorkers());
      const dropped = coordinatorDrops(world, victim.id);
      world.network.cut(victim.slot);
      try {
        await dropped;
      } finally {
        world.network.heal(victim.slot);
      }
      return `${victim.id} cut off the network until the coordinator dropped it, then reconnected`;
    }
    case 'fill-disk': {
      const failed = world.coordinator.waitForLine(/checkpoint at global step \d+ could not be written, training goes on/, {
        onlyNew: true, what: 'a checkpoint to fail on the full disk', timeoutMs: NOTICE_TIMEOUT_MS,
      });
      const bytes = world.disk.fill();
      try {
        await failed;
      } finally {
        world.disk.free();
      }
      return `checkpoint disk filled (${(bytes / 2 ** 20).toFixed(1)} MiB) until a checkpoint failed, then freed`;
    }
  }
}
