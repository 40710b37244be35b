/**
 * One chaos run: a real distributed job (nats-server, coordinator, workers in their own network
 * namespaces, a tmpfs checkpoint disk) disturbed by seeded random faults of every kind, then checked from
 * what it wrote, not from what it claims: samples lost and counted twice are recomputed from the epoch
 * reports in metrics.jsonl, replica hashes are compared, and the final weights hash is compared with the
 * undisturbed single-process run of the same seed. Reduction order is fixed by micro-batch, so a fault
 * may cost time but must leave no trace in the result.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Rng } from '../../common';
import { COORDINATOR_DONE_PATTERN, exitCodeOf } from '../../launcher';
import { datasetShape, testJobYaml, writeSignalCifar } from '../support/cluster-data';
import { finalRunWeights, localReference, recordsOf, runRecords, sampleTally, weightsHashOf } from '../support/cluster-checks';
import { pollUntil, withDeadline } from '../support/deadline';
import { ChaosWorld } from './chaos-world';
import { FAULT_KINDS, type FaultKind, injectFault } from './faults';

export interface ChaosOptions {
  seed: number;
  /** Faults injected; at least one of each kind. */
  faults: number;
  epochs: number;
  /** Generated training images (a quarter is held out for validation). */
  images: number;
  workers: number;
  /** Faults come 0..maxGapSteps steps (seeded) after the previous one recovered. */
  maxGapSteps: number;
  log: (line: string) => void;
}

export interface ChaosResult {
  seed: number;
  faults: number;
  survived: number;
  kinds: Record<FaultKind, number>;
  samplesLost: number;
  samplesDuplicated: number;
  hashMismatches: number;
  finished: boolean;
  finalEqual: boolean;
}

/** How long training may take to reach the next awaited step (a fault's recovery included). */
const PROGRESS_TIMEOUT_MS = 300_000;

/** The one line `make chaos` prints. */
export function chaosLine(r: ChaosResult): string {
  const kinds = FAULT_KINDS.map((k) => `${k}:${r.kinds[k]}`).join(',');
  return `chaos seed=${r.seed} faults=${r.faults} survived=${r.survived} samples_lost=${r.samplesLost} ` +
    `samples_duplicated=${r.samplesDuplicated} hash_mismatches=${r.hashMismatches} final_equal=${r.finalEqual} kinds=${kinds}`;
}

/** Fault kinds in a seeded order that holds every kind at least once per seven faults. */
export function faultSchedule(rng: Rng, faults: number): FaultKind[] {
  if (faults < FAULT_KINDS.length) throw new Error(`faults: expected at least ${FAULT_KINDS.length}, one of each kind, got ${faults}`);
  const schedule: FaultKind[] = [];
  while (schedule.length < faults) schedule.push(...Array.from(rng.permutation(FAULT_KINDS.length), (i) => FAULT_KINDS[i]));
  return schedule.slice(0, faults);
}

/** Runs the job under faults and checks it; throws only when the run itself could not be made. */
export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const { log } = options;
  const rng = new Rng(options.seed);
  const schedule = faultSchedule(rng, options.faults);
  const dir = mkdtempSync(path.join(tmpdir(), 'shardwise-chaos-'));
  const dataDir = path.join(dir, 'cifar');
  mkdirSync(dataDir);
  writeSignalCifar(dataDir, options.images, options.seed);
  const { trainImages, stepsPerEpoch } = await datasetShape(dataDir);
  const jobYaml = testJobYaml('chaos', { minWorkers: 1, desiredWorkers: options.workers, leaseMs: 3000, checkpointEverySteps: 2 }, { epochs: options.epochs });
  const job = path.join(dir, 'chaos.yaml');
  writeFileSync(job, jobYaml);
  log(`# chaos: seed ${options.seed}, ${options.faults} faults (${schedule.join(', ')}), ${options.epochs} epochs of ${stepsPerEpoch} steps`);
  const reference = localReference(`chaos-${options.seed}-${options.images}-${options.epochs}`, jobYaml, dataDir);
  const world = await ChaosWorld.start(job, dataDir, path.join(dir, 'runs'), options.workers);
  const kinds = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  let survived = 0;
  try {
    const progress = (): number => Math.max(-1, ...recordsOf(runRecords(world.runDir), 'step').map((s) => s.globalStep));
    /**
     * Resolves with the global step once training reached `step`, or the coordinator exited. An exit first
     * rejects, unless `endOk`: then the checks after the run judge how it ended.
     */
    const reach = async (step: number, what: string, endOk = false): Promise<number> => {
      const at = await pollUntil(() => {
        const now = progress();
        return now >= step || !world.coordinator.running ? now : undefined;
      }, { timeoutMs: PROGRESS_TIMEOUT_MS, intervalMs: 50, what: `global step ${step} ${what}` });
      if (at < step && !endOk) throw new Error(`the job ended at global step ${at} before ${what}: the run is too short for its faults (more --epochs)`);
      return at;
    };
    let recovered = -1;
    for (const [i, kind] of schedule.entries()) {
      // A seeded gap after the previous fault's recovery, so faults hit different phases of a step and epoch.
      const at = await reach(recovered + 1 + rng.int(options.maxGapSteps + 1), `fault ${i + 1} (${kind})`);
      const what = await injectFault(kind, world, rng);
      kinds[kind]++;
      recovered = progress();
      log(`# fault ${i + 1} at global step ${at}, recovered by ${recovered}: ${what}`);
      // Survived: recovered, and training moved on past the step where it recovered. A recovery can take
      // the job's last steps (a recreated worker starts while the others finish): ending there is survival
      // too, if the job then finished with every sample once and the undisturbed weights (checked below).
      await reach(recovered + 1, `a step after fault ${i + 1} (${kind}) recovered`, i === schedule.length - 1);
      survived++;
    }
    await world.coordinator.waitForLine(COORDINATOR_DONE_PATTERN, { what: 'the coordinator done line', timeoutMs: 600_000 });
    const coordinatorExit = exitCodeOf(await world.coordinator.exited);
    for (const w of world.liveWorkers()) {
      const code = exitCodeOf(await withDeadline(w.child.exited, 60_000, `${w.id} to exit after STOP`));
      if (code !== 0) throw new Error(`${w.id} exited with status ${code} after the job finished`);
    }
    const records = runRecords(world.runDir);
    const misread = recordsOf(records, 'epoch-report').find((r) => r.expected !== trainImages);
    if (misread) throw new Error(`epoch ${misread.epoch}: the report expects ${misread.expected} samples, the dataset has ${trainImages}`);
    const { lost: samplesLost, duplicated: samplesDuplicated } = sampleTally(records, options.epochs, trainImages);
    const hashMismatches = recordsOf(records, 'replica-hash').reduce(
      (n, h) => n + Object.values(h.workers).filter((hash) => hash !== h.coordinator).length + (h.agree ? 0 : 1), 0);
    const epochsDone = new Set(recordsOf(records, 'epoch').map((e) => e.epoch)).size;
    const finalEqual = weightsHashOf(finalRunWeights(world.runDir)) === weightsHashOf(await reference);
    return {
      seed: options.seed, faults: options.faults, survived, kinds, samplesLost, samplesDuplicated, hashMismatches,
      finished: coordinatorExit === 0 && epochsDone === options.epochs, finalEqual,
    };
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${world.outputs()}`, { cause: err });
  } finally {
    await world.dispose();
    if (process.env.SHARDWISE_TEST_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  }
}
