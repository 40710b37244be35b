/**
 * The processes of one chaos run and the handles the faults pull: a nats-server on a fixed port (so it can
 * be restarted where clients look for it), the coordinator on a fixed port and run directory (so a killed
 * one comes back and resumes), and workers `worker-1..n`, each in its own network namespace.
 */
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import {
  COORDINATOR_READY_PATTERN,
  type LocalNats,
  ManagedChild,
  startLocalNats,
  WORKER_READY_PATTERN,
} from '../../launcher';
import { compiledShardwise } from '../support/compiled-shardwise';
import { TEST_BACKEND } from '../support/cluster';
import { getFreePort } from '../support/free-port';
import { CheckpointDisk } from './checkpoint-disk';
import { WorkerNetwork } from './network';

/** Start of a coordinator or a worker on a loaded 2-core machine (tfjs, model, data). */
const START_TIMEOUT_MS = 120_000;
/** Size of the checkpoint tmpfs: room for a few small_cnn checkpoints, filled on purpose by one fault. */
const CHECKPOINT_DISK_MB = 16;

/** Set SHARDWISE_TEST_VERBOSE=1 to see every child's output live. */
const VERBOSE = process.env.SHARDWISE_TEST_VERBOSE === '1';

/** One worker the world started: its slot (namespace) number and its process. */
export interface ChaosWorker {
  id: string;
  slot: number;
  child: ManagedChild;
}

/** Worlds not yet disposed, so a signal that ends the run can still remove their namespaces and mounts. */
const LIVE_WORLDS = new Set<ChaosWorld>();

/** Disposes every world still up (for a SIGINT/SIGTERM handler: the run's `finally` never runs then). */
export async function disposeLiveWorlds(): Promise<void> {
  await Promise.all([...LIVE_WORLDS].map((w) => w.dispose()));
}

/** The processes, namespaces and checkpoint disk of one chaos run. */
export class ChaosWorld {
  readonly network: WorkerNetwork;
  readonly disk: CheckpointDisk;
  readonly runDir: string;
  coordinator!: ManagedChild;
  nats!: LocalNats;
  readonly workers = new Map<string, ChaosWorker>();
  private readonly shardwise = compiledShardwise();
  private readonly retired: ManagedChild[] = [];
  private coordinatorPort = 0;
  private natsPort = 0;
  private nextSlot = 1;

  private constructor(
    private readonly job: string,
    private readonly dataDir: string,
    runsDir: string,
  ) {
    this.runDir = path.join(runsDir, 'chaos');
    mkdirSync(this.runDir, { recursive: true });
    this.network = WorkerNetwork.create();
    try {
      this.disk = CheckpointDisk.mount(this.runDir, CHECKPOINT_DISK_MB);
    } catch (err) {
      this.network.dispose();
      throw err;
    }
  }

  /** Starts nats-server, the coordinator and `workers` workers; resolves once all are ready. */
  static async start(job: string, dataDir: string, runsDir: string, workers: number): Promise<ChaosWorld> {
    const world = new ChaosWorld(job, dataDir, runsDir);
    LIVE_WORLDS.add(world);
    try {
      world.natsPort = await getFreePort('0.0.0.0');
      world.coordinatorPort = await getFreePort('0.0.0.0');
      await world.startNats();
      await world.startCoordinator();
      await Promise.all(Array.from({ length: workers }, () => world.addWorker()));
      return world;
    } catch (err) {
      await world.dispose();
      throw err;
    }
  }

  /** The address workers dial (the host side of their veth pairs). */
  get coordinatorAddress(): string {
    return `${this.network.hostAddress}:${this.coordinatorPort}`;
  }

  async startNats(): Promise<void> {
    this.nats = await startLocalNats({ host: '0.0.0.0', port: this.natsPort });
  }

  async stopNats(): Promise<void> {
    await this.nats.process.stop({ graceMs: 5000 });
  }

  /** Starts the coordinator (resuming from the run directory's checkpoints, if any) and waits for it. */
  async startCoordinator(): Promise<void> {
    const host = this.network.hostAddress;
    this.coordinator = this.spawn('coordinator', [], [
      'coordinator', '--job', this.job, '--data', this.dataDir, '--run-dir', this.runDir, '--host', '0.0.0.0',
      '--port', String(this.coordinatorPort), '--advertise-host', host, '--metrics-port', '0', '--backend', TEST_BACKEND,
      '--nats', `nats://${host}:${this.natsPort}`,
    ]);
    await this.coordinator.waitForLine(COORDINATOR_READY_PATTERN, { what: 'the coordinator ready line', timeoutMs: START_TIMEOUT_MS });
  }

  /** The slot (and id suffix) the next `addWorker` takes. */
  get nextWorkerSlot(): number {
    return this.nextSlot;
  }

  /** Starts a worker in a fresh namespace (a new id) and waits for its ready line. */
  addWorker(): Promise<ChaosWorker> {
    const slot = this.nextSlot++;
    return this.startWorker(`worker-${slot}`, slot);
  }

  /** Starts `id` in namespace `slot` (again, for a replacement under the same id) and waits for it. */
  async startWorker(id: string, slot: number): Promise<ChaosWorker> {
    const { address } = this.network.slot(slot);
    const child = this.spawn(id, this.network.exec(slot), [
      'worker', '--coordinator', this.coordinatorAddress, '--id', id, '--data-host', address, '--metrics-host', address,
      '--metrics-port', '0', '--backend', TEST_BACKEND,
    ]);
    const worker = { id, slot, child };
    this.workers.set(id, worker);
    // A worker registers only with a running coordinator: when the job ends (or the coordinator dies) while
    // this one starts, say so at once instead of waiting out the start timeout on UNAVAILABLE retries.
    const coordinator = this.coordinator;
    const coordinatorGone = coordinator.exited.then((status) => {
      throw new Error(`the coordinator exited (${status.code ?? status.signal}) before ${id} registered: the job ended while ` +
        'the worker started, so the run is too short for its faults');
    });
    coordinatorGone.catch(() => undefined); // Rejects at every job's end; only the race below cares.
    await Promise.race([child.waitForLine(WORKER_READY_PATTERN, { what: `${id}'s ready line`, timeoutMs: START_TIMEOUT_MS }), coordinatorGone]);
    return worker;
  }

  /** Workers whose process runs. */
  liveWorkers(): ChaosWorker[] {
    return [...this.workers.values()].filter((w) => w.child.running);
  }

  /** Forgets a worker whose process is gone (killed or drained), keeping its output for failure messages. */
  retire(worker: ChaosWorker): void {
    this.workers.delete(worker.id);
    this.retired.push(worker.child);
  }

  /** Every process's recent output, for a failure message. */
  outputs(lines = 30): string {
    const all = [this.coordinator, ...[...this.workers.values()].map((w) => w.child), ...this.retired].filter(Boolean);
    return all.map((c) => `--- ${c.name} (pid ${c.pid}) ---\n${c.tail(lines)}`).join('\n');
  }

  /** Stops every process, unmounts the disk and removes the namespaces. Never throws. */
  async dispose(): Promise<void> {
    LIVE_WORLDS.delete(this);
    const children = [this.coordinator, this.nats?.process, ...[...this.workers.values()].map((w) => w.child), ...this.retired];
    await Promise.all(children.filter(Boolean).map((c) => c.stop({ graceMs: 5000 }).catch(() => undefined)));
    this.disk?.dispose();
    this.network.dispose();
  }

  private spawn(name: string, prefix: string[], args: string[]): ManagedChild {
    const [command, ...before] = prefix.length > 0 ? [...prefix, this.shardwise.command] : [this.shardwise.command];
    const child = ManagedChild.spawn({
      name,
      command,
      args: [...before, ...this.shardwise.args, ...args],
      env: { ...process.env, SHARDWISE_DEBUG: '1' },
      onLine: VERBOSE ? (line) => process.stderr.write(`[${name}] ${line}\n`) : undefined,
    });
    if (name === 'coordinator' && this.coordinator?.running === false) this.retired.push(this.coordinator);
    return child;
  }
}
