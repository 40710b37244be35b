/**
 * What every distributed test asserts about a finished (or interrupted) run: from the run directory's
 * `metrics.jsonl` (epoch-report and replica-hash records) and its saved model, and against the weights the
 * single-process trainer reaches on the same job.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../../common/compute';
import { loadTrainVal } from '../../common/data';
import { type JobSpec, parseJobSpec } from '../../common/job';
import { buildModel, disposeModelParts, MODEL_JSON_FILE, namedVariables, WEIGHTS_FILE } from '../../common/models';
import { type MetricsRecord, readMetrics, RUN_FILES } from '../../common/reporting';
import { runLocalTraining } from '../../common/training';
import type { ManagedChild } from '../../launcher';
import { type ClusterHarness, type CoordinatorProc, TEST_BACKEND, type WorkerProc } from './cluster';
import { EPOCHS } from './cluster-data';
import { pollUntil } from './deadline';

/** An allreduce attempt that failed by waiting out its timeout, as a member (a worker or the coordinator) logs it. */
const TIMED_OUT = /allreduce \S+ failed .*not done within \d+ ms/;

/**
 * No process among `procs` waited out an allreduce's timeout: every attempt that failed ended as soon as
 * its cause (a member lost, a plan voided, a session ended) was known, instead of holding its members.
 */
export function assertNoExchangeTimedOut(procs: readonly { child: ManagedChild }[]): void {
  for (const { child } of procs) {
    const stuck = child.lines().filter((l) => TIMED_OUT.test(l));
    assert.deepEqual(stuck, [], `${child.name} waited out an exchange's timeout`);
  }
}

/** Variable values by `originalName` (`block1_conv1_conv/kernel`), BatchNorm statistics included. */
export type WeightMap = Map<string, { shape: number[]; values: Float32Array }>;

type Of<T extends MetricsRecord['type']> = Extract<MetricsRecord, { type: T }>;

/** The run's `metrics.jsonl` (a last line cut short by a kill is skipped). */
export function runRecords(runDir: string): MetricsRecord[] {
  return readMetrics(runDir, { allowTruncatedTail: true });
}

/**
 * Waits until `find` returns something for the run's records so far (the file is re-read every 25 ms:
 * a condition, not a sleep) and returns it.
 */
export function waitForRecords<T>(runDir: string, find: (records: MetricsRecord[]) => T | undefined, what: string, timeoutMs = 120_000): Promise<T> {
  return pollUntil(() => find(runRecords(runDir)), { timeoutMs, intervalMs: 25, what });
}

/** The records of one type. */
export function recordsOf<T extends MetricsRecord['type']>(records: readonly MetricsRecord[], type: T): Of<T>[] {
  return records.filter((r): r is Of<T> => r.type === type);
}

/**
 * Every epoch 0..epochs-1 has an epoch-report, and every report says each of the epoch's `trainImages`
 * samples was counted exactly once (none missing, none twice). Returns the reports by epoch (the last
 * one when an epoch was reported more than once, e.g. around a coordinator restart).
 */
export function assertExactlyOnce(records: readonly MetricsRecord[], epochs: number, trainImages: number): Of<'epoch-report'>[] {
  const reports = recordsOf(records, 'epoch-report');
  const byEpoch: Of<'epoch-report'>[] = [];
  for (let epoch = 0; epoch < epochs; epoch++) {
    const mine = reports.filter((r) => r.epoch === epoch);
    assert.ok(mine.length > 0, `no epoch-report for epoch ${epoch}; reports: ${JSON.stringify(reports)}`);
    for (const r of mine) {
      assert.deepEqual(
        { exactlyOnce: r.exactlyOnce, expected: r.expected, counted: r.counted, missing: r.missing },
        { exactlyOnce: true, expected: trainImages, counted: trainImages, missing: [] },
        `epoch ${epoch}: ${JSON.stringify(r)}`,
      );
    }
    byEpoch.push(mine[mine.length - 1]);
  }
  return byEpoch;
}

/**
 * Samples lost and counted twice over a long run's `epochs`, recomputed from its epoch-report records (the
 * ledger's own count): an epoch with no report lost all `trainImages`. Unlike {@link assertExactlyOnce} it
 * counts rather than fails, for runs that print a tally line (chaos, soak).
 */
export function sampleTally(records: readonly MetricsRecord[], epochs: number, trainImages: number): { lost: number; duplicated: number } {
  const reports = new Map(recordsOf(records, 'epoch-report').map((r) => [r.epoch, r]));
  let lost = 0;
  let duplicated = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const report = reports.get(epoch);
    if (!report) {
      lost += trainImages;
      continue;
    }
    lost += report.missing.length;
    duplicated += Math.max(0, report.counted - (report.expected - report.missing.length));
  }
  return { lost, duplicated };
}

/**
 * Every replica-hash record agrees with the coordinator, and the comparisons cover every epoch with at
 * least one worker hash each (so agreement is not vacuous). Returns the records.
 */
export function assertReplicasAgree(records: readonly MetricsRecord[], epochs: number, stepsPerEpoch: number): Of<'replica-hash'>[] {
  const hashes = recordsOf(records, 'replica-hash');
  const disagreeing = hashes.filter((h) => !h.agree);
  assert.deepEqual(disagreeing, [], 'replica hashes that disagree with the coordinator');
  for (let epoch = 0; epoch < epochs; epoch++) {
    const inEpoch = hashes.filter((h) => Math.floor(h.globalStep / stepsPerEpoch) === epoch && Object.keys(h.workers).length > 0);
    assert.ok(inEpoch.length > 0, `no replica-hash comparison with a worker hash in epoch ${epoch}: ${JSON.stringify(hashes)}`);
    for (const h of inEpoch) {
      for (const [worker, hash] of Object.entries(h.workers)) assert.equal(hash, h.coordinator, `${worker} at step ${h.globalStep}`);
    }
  }
  return hashes;
}

/**
 * What a fault may never cost: the run finished every epoch, counted each sample exactly once per epoch,
 * its replicas agreed with the coordinator, and its final weights are the single-process trainer's bit for bit.
 */
export function assertRunMatchesReference(runDir: string, shape: { trainImages: number; stepsPerEpoch: number }, reference: WeightMap, label: string, epochs: number): void {
  const records = runRecords(runDir);
  assertTrainingFinished(records, epochs);
  assertExactlyOnce(records, epochs, shape.trainImages);
  assertReplicasAgree(records, epochs, shape.stepsPerEpoch);
  assertSameWeightsHash(finalRunWeights(runDir), reference, label);
}

/**
 * Waits for a fault test's job to end (`run`, e.g. `harness.awaitFinished`), failing with every process's
 * recent output when it does not, then makes the run-level checks of {@link assertRunMatchesReference}.
 */
export async function finishAndCheck(harness: ClusterHarness, run: () => Promise<void>, runDir: string, reference: WeightMap, label: string): Promise<void> {
  try {
    await run();
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${harness.outputs()}`);
  }
  assertRunMatchesReference(runDir, harness, reference, label, EPOCHS);
}

/** Training ran to its end: an epoch record for every epoch, each with validation metrics. */
export function assertTrainingFinished(records: readonly MetricsRecord[], epochs: number): void {
  const done = [...new Set(recordsOf(records, 'epoch').map((e) => e.epoch))].sort((a, b) => a - b);
  assert.deepEqual(done, Array.from({ length: epochs }, (_, i) => i), 'epochs with an epoch record');
  for (const e of recordsOf(records, 'epoch')) assert.ok(Number.isFinite(e.val.loss), `epoch ${e.epoch} validation loss ${e.val.loss}`);
}

/** What `runCleanJob` leaves to look at: the processes, the run's records and its replica-hash records. */
export interface CleanRun {
  coordinator: CoordinatorProc;
  workers: WorkerProc[];
  records: MetricsRecord[];
  hashes: Of<'replica-hash'>[];
}

/**
 * Runs the job file `job` (EPOCHS epochs) to its end with `workers` fresh worker processes and checks what
 * every undisturbed run must show: training finished, every sample once per epoch, the replicas agreeing.
 * Fails with every process's output when the job does not finish.
 */
export async function runCleanJob(harness: ClusterHarness, job: string, workers: number): Promise<CleanRun> {
  const coordinator = await harness.startCoordinator({ job });
  const procs = await harness.startWorkers(coordinator.ready.grpc, workers);
  try {
    await harness.awaitFinished(coordinator, procs);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${harness.outputs()}`);
  }
  const records = runRecords(coordinator.ready.runDir);
  assertTrainingFinished(records, EPOCHS);
  assertExactlyOnce(records, EPOCHS, harness.trainImages);
  const hashes = assertReplicasAgree(records, EPOCHS, harness.stepsPerEpoch);
  return { coordinator, workers: procs, records, hashes };
}

/** The weights of a saved TF.js layers model (model.json + one weights.bin), by the names it stored. */
export function readSavedWeights(dir: string): WeightMap {
  const modelJson = JSON.parse(readFileSync(path.join(dir, MODEL_JSON_FILE), 'utf8')) as {
    weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; dtype: string }[] }[];
  };
  const weights: WeightMap = new Map();
  for (const group of modelJson.weightsManifest) {
    assert.deepEqual(group.paths, [WEIGHTS_FILE], `expected one ${WEIGHTS_FILE} shard in ${dir}`);
    const bytes = readFileSync(path.join(dir, WEIGHTS_FILE));
    let offset = 0;
    for (const spec of group.weights) {
      assert.equal(spec.dtype, 'float32', `${spec.name} dtype`);
      const count = spec.shape.reduce((a, b) => a * b, 1);
      const values = new Float32Array(count);
      new Uint8Array(values.buffer).set(bytes.subarray(offset, offset + count * 4));
      offset += count * 4;
      weights.set(spec.name, { shape: spec.shape, values });
    }
    assert.equal(offset, bytes.length, `${WEIGHTS_FILE} size in ${dir}`);
  }
  return weights;
}

/** The final model a run saved (`<run>/checkpoint`, written after the last epoch). */
export function finalRunWeights(runDir: string): WeightMap {
  return readSavedWeights(path.join(runDir, RUN_FILES.checkpoint));
}

/** Largest |a - b| over the largest |b| (0 when both are all zeros): a scale-aware difference per variable. */
export function relativeDifference(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff === 0 ? 0 : diff / Math.max(scale, 1e-12);
}

/** sha256 over every variable's name, shape and float32 bytes, in name order: equal only for identical weights. */
export function weightsHashOf(weights: WeightMap): string {
  const h = createHash('sha256');
  for (const name of [...weights.keys()].sort()) {
    const w = weights.get(name)!;
    h.update(`${name} [${w.shape.join(',')}]\n`);
    h.update(Buffer.from(w.values.buffer, w.values.byteOffset, w.values.byteLength));
  }
  return `sha256:${h.digest('hex')}`;
}

/**
 * The determinism contract: the same weights bit for bit (equal hashes). On a difference the message
 * lists the variables that differ and by how much, so a failure says where the sums parted.
 */
export function assertSameWeightsHash(actual: WeightMap, expected: WeightMap, label: string): void {
  if (weightsHashOf(actual) === weightsHashOf(expected)) return;
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${label}: variable names`);
  const differ = [...expected].flatMap(([name, exp]) => {
    const act = actual.get(name)!;
    const rel = relativeDifference(act.values, exp.values);
    return rel === 0 && Buffer.from(act.values.buffer).equals(Buffer.from(exp.values.buffer)) ? [] : [`${name}: relative difference ${rel.toExponential(2)}`];
  });
  assert.fail(`${label}: weights hashes differ (${weightsHashOf(actual)} vs ${weightsHashOf(expected)}); ` +
    `${differ.length} of ${expected.size} variables differ: ${differ.slice(0, 8).join('; ')}`);
}

const references = new Map<string, Promise<WeightMap>>();

/**
 * The single-process reference: `runLocalTraining` on the same job (YAML text or a parsed spec) and data
 * in this process, on the same backend as the workers. Memoised per `key` (the `distributed` section does
 * not change the math, so jobs that differ only there share one).
 */
export function localReference(key: string, job: string | JobSpec, dataDir: string): Promise<WeightMap> {
  let ref = references.get(key);
  if (!ref) {
    ref = trainLocally(typeof job === 'string' ? parseJobSpec(job) : job, dataDir);
    references.set(key, ref);
  }
  return ref;
}

async function trainLocally(spec: JobSpec, dataDir: string): Promise<WeightMap> {
  await initBackend({ prefer: TEST_BACKEND, log: () => undefined });
  const data = await loadTrainVal({ ...spec.data, dir: dataDir }, spec.seed);
  const parts = await buildModel(spec.model, spec.seed);
  try {
    await runLocalTraining(spec, { train: data.train, val: data.val, parts });
    const { backbone, head } = namedVariables(parts);
    const weights: WeightMap = new Map();
    for (const v of [...backbone, ...head]) {
      weights.set(v.originalName, { shape: [...v.shape] as number[], values: Float32Array.from(v.read().dataSync() as Float32Array) });
    }
    return weights;
  } finally {
    disposeModelParts(parts);
  }
}

/** The initial weights of the job's model (to show that training moved them). */
export async function initialWeights(jobYaml: string): Promise<WeightMap> {
  await initBackend({ prefer: TEST_BACKEND, log: () => undefined });
  const spec = parseJobSpec(jobYaml);
  const parts = await buildModel(spec.model, spec.seed);
  try {
    const { backbone, head } = namedVariables(parts);
    return new Map([...backbone, ...head].map((v) => [v.originalName, { shape: [...v.shape] as number[], values: Float32Array.from(v.read().dataSync() as Float32Array) }]));
  } finally {
    disposeModelParts(parts);
  }
}
