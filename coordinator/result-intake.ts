import {
  DivergenceError,
  MessageTooLargeError,
  TensorAssembler,
  TensorCodecError,
  type WireTensorSpec,
} from '../common';
import { InvalidResultError, JobFailedError, StaleResultError } from './errors';
import type { EvalRound } from './eval-round';
import type { JobContext } from './job-context';
import { countInLedger, type Handout, type ShareSums, type StepRound } from './step';

/** A chunk of a pushed tensor, as the wire layer's assembler takes it. */
export type WireChunk = Parameters<TensorAssembler['add']>[0];

/** The header of a PushGradients stream, in domain terms. */
export interface GradientPush {
  workerId: string;
  globalStep: number;
  configVersion: number;
  sampleCount: number;
  lossSum: number;
  correctTop1: number;
  correctTop5: number;
  microBatchIds: number[];
  gradients: WireTensorSpec[];
  statDeltas: WireTensorSpec[];
  /** Empty when the step did not ask for it. */
  weightsHash: string;
  weightsVersion: number;
  /** No tensors follow: the worker keeps the sums for the step's allreduce. */
  held: boolean;
}

/** A SubmitEval request, in domain terms. */
export interface EvalResult {
  workerId: string;
  globalStep: number;
  epoch: number;
  sampleCount: number;
  lossSum: number;
  correctTop1: number;
  correctTop5: number;
  /** Row-major numClasses x numClasses, or empty. */
  confusion: Uint32Array;
  microBatchIds: number[];
}

/** The answer to an accepted push. */
export interface PushAccepted {
  globalStep: number;
  workersReported: number;
}

function describeSpec(s: WireTensorSpec): string {
  return `${s.name} [${s.shape.join(',')}] ${s.dtype}`;
}

/** Checks a pushed manifest against the coordinator's own; the message names the first difference. */
function checkManifest(workerId: string, what: string, got: readonly WireTensorSpec[], expected: readonly WireTensorSpec[]): void {
  const want = new Map(expected.map((s) => [s.name, s]));
  const seen = new Set<string>();
  for (const s of got) {
    const e = want.get(s.name);
    if (!e) {
      throw new InvalidResultError(workerId, s.name, `${what} manifest lists '${s.name}', which is not an unfrozen ${what} ` +
        `tensor of the model (expected ${expected.length} tensors, e.g. ${expected.slice(0, 3).map((x) => x.name).join(', ')})`);
    }
    if (seen.has(s.name)) throw new InvalidResultError(workerId, s.name, `${what} manifest lists '${s.name}' twice`);
    seen.add(s.name);
    if (e.dtype !== s.dtype || e.shape.length !== s.shape.length || e.shape.some((d, k) => d !== s.shape[k])) {
      throw new InvalidResultError(workerId, s.name, `${what} '${s.name}': expected ${describeSpec(e)}, got ${describeSpec(s)}`);
    }
  }
  const missing = expected.filter((s) => !seen.has(s.name));
  if (missing.length > 0) {
    throw new InvalidResultError(workerId, missing[0].name, `${what} manifest lacks ${missing.length} of ${expected.length} ` +
      `tensors, first '${missing[0].name}'`);
  }
}

function checkCounts(workerId: string, r: { sampleCount: number; correctTop1: number; correctTop5: number }, expected: number, ids: readonly number[]): void {
  if (r.sampleCount !== expected) {
    throw new InvalidResultError(workerId, 'sample_count', `sample_count: micro-batches [${ids.join(', ')}] hold ${expected} samples, ` +
      `the result says ${r.sampleCount}`);
  }
  if (r.correctTop1 > r.correctTop5 || r.correctTop5 > r.sampleCount) {
    throw new InvalidResultError(workerId, 'correct_count', `expected correct_count <= correct_top5 <= sample_count (${r.sampleCount}), ` +
      `got ${r.correctTop1} and ${r.correctTop5}`);
  }
}

/**
 * A result that names a step or micro-batches the worker does not hold now. Repeats of micro-batches
 * already counted (a late push after its share was redone) are shown to the ledger, which reports them
 * in the epoch's `duplicatesRejected`; nothing is counted.
 */
function staleShare(job: JobContext, push: GradientPush, message: string): StaleResultError {
  const { ledger, planner } = job;
  if (Number.isInteger(push.globalStep) && push.globalStep >= 0) {
    const at = planner.positionOf(push.globalStep);
    const round = job.round;
    const openHere = round?.kind === 'train' && round.globalStep === push.globalStep;
    for (const id of push.microBatchIds) {
      const closed = at.epoch === ledger.epoch && at.step < ledger.openStep;
      const repeat = openHere && round.collector.isAccepted(id);
      if (closed || repeat) ledger.accept(at, id, push.workerId, []);
    }
  }
  const expected = job.round?.kind === 'train' ? job.round.globalStep : job.weightsVersion;
  return new StaleResultError(push.workerId, 'globalStep', expected, push.globalStep, message);
}

/** The step round a push must belong to, and the handout it must match; throws StaleResultError otherwise. */
function expectedShare(job: JobContext, push: GradientPush): { round: StepRound; handout: Handout } {
  const round = job.round;
  if (round?.kind !== 'train' || round.globalStep !== push.globalStep) {
    const now = round === null ? 'between steps' : round.kind === 'train' ? `at step ${round.globalStep}` :
      `evaluating epoch ${round.epoch}`;
    throw staleShare(job, push, `push for step ${push.globalStep}, but the coordinator is ${now}; nothing was counted`);
  }
  const wrong = round.collector.mismatch(push.workerId, push.microBatchIds);
  if (wrong) throw staleShare(job, push, `step ${push.globalStep}: ${wrong.message}; nothing was counted`);
  return { round, handout: round.collector.handout(push.workerId) as Handout };
}

/**
 * Receives one PushGradients stream: checks the header against the share the worker holds, reassembles
 * and checks the tensors chunk by chunk (names, shapes, sizes, the negotiated message limit, NaN/Inf),
 * and counts the share exactly once. A malformed share fails the worker and its micro-batches are redone
 * by others; a stale one is refused and not counted; a well-formed share with a non-finite loss means the
 * model diverged and fails the job.
 */
export async function receiveGradients(job: JobContext, push: GradientPush, chunks: AsyncIterable<WireChunk>): Promise<PushAccepted> {
  const headerAtMs = job.now();
  const { session } = job.members.member(push.workerId);
  const { round } = expectedShare(job, push);
  if (push.configVersion !== round.configVersion) {
    throw new StaleResultError(push.workerId, 'configVersion', round.configVersion, push.configVersion,
      `step ${round.globalStep} runs on config v${round.configVersion}, the push was computed on v${push.configVersion}: ` +
        'call GetConfig and compute it again');
  }
  const diverged = !Number.isFinite(push.lossSum);
  let sums: ShareSums;
  let bytes = 0;
  try {
    checkCounts(push.workerId, push, round.sampleCount(push.microBatchIds), push.microBatchIds);
    checkManifest(push.workerId, 'gradient', push.gradients, round.gradientSpecs);
    checkManifest(push.workerId, 'BatchNorm statistic delta', push.statDeltas, round.statSpecs);
    if (push.held) {
      if (!session.dataAddress || job.spec.distributed.exchange !== 'allreduce') {
        throw new InvalidResultError(push.workerId, 'held', `a held push needs the allreduce exchange and a worker data plane; ` +
          `the job's exchange is '${job.spec.distributed.exchange}', the worker registered ${session.dataAddress ? 'one' : 'none'}: push the tensors`);
      }
      for await (const chunk of chunks) {
        throw new InvalidResultError(push.workerId, chunk.name, 'a held push carries no tensor chunks (the sums stay with the worker), ' +
          `got a chunk of '${chunk.name}'`);
      }
    }
    const assembler = new TensorAssembler({
      expected: [...round.gradientSpecs, ...round.statSpecs],
      checkFinite: !diverged,
      maxMessageBytes: session.maxMessageBytes,
    });
    for await (const chunk of chunks) {
      assembler.add(chunk);
      bytes += chunk.data.length;
    }
    const tensors = push.held ? new Map() : assembler.finish();
    const pick = (specs: readonly WireTensorSpec[]) =>
      push.held ? new Map<string, Float32Array>() : new Map(specs.map((s) => [s.name, tensors.get(s.name)?.data as Float32Array]));
    sums = {
      worker: push.workerId,
      microBatchIds: [...push.microBatchIds],
      held: push.held,
      grads: pick(round.gradientSpecs),
      deltas: pick(round.statSpecs),
      lossSum: push.lossSum,
      correctTop1: push.correctTop1,
      correctTop5: push.correctTop5,
      count: push.sampleCount,
    };
  } catch (err) {
    if (err instanceof TensorCodecError && !(err instanceof MessageTooLargeError)) {
      job.loseWorker(push.workerId, 'failed', `sent a corrupt share for step ${round.globalStep}: ${err.message}`);
    }
    throw err;
  } finally {
    job.telemetry.metrics.receivedBytes.inc(bytes);
  }
  // The stream took time: the share may have been redone elsewhere meanwhile.
  const { handout } = expectedShare(job, push);
  if (diverged) {
    const error = new DivergenceError(round.plan.epoch, round.globalStep, push.lossSum / Math.max(1, push.sampleCount));
    round.fail(new JobFailedError(`the model diverged: ${error.message} (worker ${push.workerId}, ` +
      `micro-batches [${push.microBatchIds.join(', ')}]); lower the learning rate`, { cause: error }));
    return { globalStep: round.globalStep, workersReported: round.workersReported() };
  }
  // Held sums are counted when the allreduce that carries them commits (they may still be lost).
  if (!push.held) countInLedger(job, round, push.workerId, push.microBatchIds);
  checkHash(job, round, push);
  round.accept(handout, sums, headerAtMs, job.now());
  job.members.counted(push.workerId, round.globalStep);
  // A share before the step's last changes no other worker's next order (each is told from its own
  // handout and queue, the round's phase and the members): only this worker's pulls and the job's loops
  // are woken. The last share wakes everyone, as does the REDUCE decision after it.
  job.changed.notify(round.collector.complete ? undefined : push.workerId);
  return { globalStep: round.globalStep, workersReported: round.workersReported() };
}

function checkHash(job: JobContext, round: StepRound, push: GradientPush): void {
  if (!round.reportsHash || push.weightsHash === '') return;
  round.reportHash(push.workerId, push.weightsHash);
  if (push.weightsHash === round.coordinatorHash && push.weightsVersion === round.weightsVersion) return;
  job.telemetry.hashMismatches.inc();
  job.members.needsFullWeights(push.workerId, true);
  job.log(`error: replica of worker ${push.workerId} disagrees at step ${round.globalStep}: weights v${push.weightsVersion} ` +
    `hash ${push.weightsHash}, coordinator v${round.weightsVersion} hash ${round.coordinatorHash}; sending it full weights`);
}

/**
 * Receives one SubmitEval: the loss, accuracy and confusion sums of the validation micro-batches the
 * worker holds. A malformed result fails the worker (its micro-batches are evaluated by others).
 */
export function receiveEval(job: JobContext, result: EvalResult): { globalStep: number } {
  job.members.member(result.workerId);
  const round = job.round;
  if (round?.kind !== 'eval' || round.weightsVersion !== result.globalStep || round.epoch !== result.epoch) {
    const expected = round?.kind === 'eval' ? round.weightsVersion : job.weightsVersion;
    throw new StaleResultError(result.workerId, 'globalStep', expected, result.globalStep,
      `evaluation result for epoch ${result.epoch} at step ${result.globalStep}, but no such evaluation is running; nothing was counted`);
  }
  const wrong = round.collector.mismatch(result.workerId, result.microBatchIds);
  if (wrong) {
    throw new StaleResultError(result.workerId, 'microBatchIds', 0, 0, `evaluation of epoch ${round.epoch}: ${wrong.message}; nothing was counted`);
  }
  try {
    checkEval(result, round);
  } catch (err) {
    job.loseWorker(result.workerId, 'failed', `sent a corrupt evaluation result: ${(err as Error).message}`);
    throw err;
  }
  const handout = round.collector.handout(result.workerId) as Handout;
  const confusion = result.confusion.length > 0 ? result.confusion : undefined;
  round.accept(result.workerId, handout, { ...result, confusion, count: result.sampleCount });
  job.changed.notify();
  return { globalStep: round.weightsVersion };
}

function checkEval(result: EvalResult, round: EvalRound): void {
  checkCounts(result.workerId, result, round.sampleCount(result.microBatchIds), result.microBatchIds);
  const classes = round.metrics.numClasses;
  if (result.confusion.length === 0) return;
  if (result.confusion.length !== classes * classes) {
    throw new InvalidResultError(result.workerId, 'confusion_matrix', `expected ${classes * classes} counts ` +
      `(${classes} classes squared) or none, got ${result.confusion.length}`);
  }
  const total = result.confusion.reduce((a, b) => a + b, 0);
  if (total !== result.sampleCount) {
    throw new InvalidResultError(result.workerId, 'confusion_matrix', `expected counts summing to sample_count ${result.sampleCount}, ` +
      `they sum to ${total}`);
  }
}
