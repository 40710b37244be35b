import {
  type AllreduceMember,
  clientStreamHandler,
  duplexStreamHandler,
  encodeTensors,
  type ReadyState,
  serverStreamHandler,
  specFromProto,
  specOf,
  specToProto,
  unaryHandler,
  UpdateKind,
  type WireTensor,
} from '../common';
import {
  type ConfigState,
  type CoordinatorServer,
  type GetWeightsRequest,
  type GetWeightsResponse,
  type GradientHeader,
  type HeldResult,
  type PushGradientsRequest,
  type PushGradientsResponse,
  type RegisterRequest,
  type RegisterResponse,
  type SessionOrder,
  type SessionReady,
  type SessionRequest,
  StepKind,
  type StepAssignment,
  UpdateKind as ProtoUpdateKind,
  type WorkerCapabilities,
} from '../proto';
import { type Assignment, AssignmentKind } from './assignment-desk';
import { CallAccess, guardedService } from './call-access';
import { InvalidResultError, WorkerGoneError } from './errors';
import type { JobContext } from './job-context';
import { type GradientPush, receiveEval, receiveGradients, type WireChunk } from './result-intake';
import { type Order, SessionOrders, type StandingReady } from './session-orders';
import {
  configFor,
  heartbeat,
  leaveJob,
  registerWorker,
  scaleJob,
  type WorkerCapabilitiesInput,
  weightsFor,
} from './worker-calls';

/*
 * The gRPC face of the coordinator: each handler turns proto messages into domain calls and their
 * results back into proto messages. Nothing is decided here; errors are domain/wire errors whose
 * status code common/wire/grpc-status.ts assigns.
 */

const STEP_KINDS: Record<AssignmentKind, StepKind> = {
  train: StepKind.TRAIN,
  eval: StepKind.EVAL,
  wait: StepKind.WAIT,
  stop: StepKind.STOP,
  reduce: StepKind.REDUCE,
};

const UPDATE_KINDS: Record<UpdateKind, ProtoUpdateKind> = {
  [UpdateKind.None]: ProtoUpdateKind.NONE,
  [UpdateKind.Weights]: ProtoUpdateKind.WEIGHTS,
  [UpdateKind.WeightsRef]: ProtoUpdateKind.WEIGHTS_REF,
  [UpdateKind.Apply]: ProtoUpdateKind.APPLY,
};

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function capabilitiesOf(c: WorkerCapabilities | undefined): WorkerCapabilitiesInput {
  return {
    workerId: c?.workerId ?? '',
    shardwiseVersion: c?.shardwiseVersion ?? '',
    protocolVersion: c?.protocolVersion ?? 0,
    backend: c?.backend ?? '',
    modelFingerprint: c?.modelFingerprint ?? '',
    maxMessageBytes: c?.maxMessageBytes ?? 0,
    pid: c?.pid ?? 0,
    hostname: c?.hostname ?? '',
    dataAddress: c?.dataAddress ?? '',
    processId: c?.processId ?? '',
  };
}

/** The members of an allreduce as a REDUCE order lists them. */
type ProtoMembers = NonNullable<StepAssignment['reduce']>['members'];

/**
 * Each attempt's members as proto, built once for all its REDUCE orders: every member's order lists every
 * member (with 64 workers, 4,096 member objects built and dropped per step). Keyed by the attempt's own
 * members array, which every order of the attempt shares (Reduction.orderFor).
 */
const protoMembers = new WeakMap<readonly AllreduceMember[], ProtoMembers>();

function membersToProto(members: readonly AllreduceMember[]): ProtoMembers {
  let proto = protoMembers.get(members);
  if (!proto) {
    proto = members.map((m) => ({ id: m.id, address: m.address, observer: m.role === 'observer', parts: [...(m.parts ?? [])] }));
    protoMembers.set(members, proto);
  }
  return proto;
}

function toStepAssignment(a: Assignment): StepAssignment {
  return {
    kind: STEP_KINDS[a.kind],
    globalStep: a.globalStep,
    epoch: a.epoch,
    configVersion: a.configVersion,
    microBatches: a.microBatches.map((mb) => ({ id: mb.id, sampleIndices: Array.from(mb.sampleIndices) })),
    samples: a.samples && {
      sampleIndices: Array.from(a.samples.indices),
      labels: asBuffer(a.samples.labels),
      images: asBuffer(a.samples.images),
    },
    updateKind: UPDATE_KINDS[a.update.kind],
    updateStep: a.update.updateStep,
    stepMicroBatchCount: a.stepMicroBatchCount,
    updateTensors: a.update.tensors.map((t) => specToProto(specOf(t))),
    retryAfterMs: a.retryAfterMs,
    weightsVersion: a.weightsVersion,
    reportWeightsHash: a.reportWeightsHash,
    waitReason: a.waitReason,
    reduce: a.reduce && {
      key: a.reduce.key,
      members: membersToProto(a.reduce.members),
      rank: a.reduce.rank,
      tensors: a.reduce.tensors.map(specToProto),
      gradientTensorCount: a.reduce.gradientTensorCount,
      timeoutMs: a.reduce.timeoutMs,
    },
    apply: a.update.apply && {
      key: a.update.apply.key,
      groups: Object.entries(a.update.apply.learningRates).map(([name, learningRate]) => ({ name, frozen: false, learningRate })),
      sampleCount: a.update.apply.sampleCount,
      microBatchCount: a.update.apply.microBatchCount,
    },
  };
}

function pushOf(h: GradientHeader): GradientPush {
  return {
    workerId: h.workerId,
    globalStep: h.globalStep,
    configVersion: h.configVersion,
    sampleCount: h.sampleCount,
    lossSum: h.lossSum,
    correctTop1: h.correctCount,
    correctTop5: h.correctTop5,
    microBatchIds: [...h.microBatchIds],
    gradients: h.tensors.map(specFromProto),
    statDeltas: h.statDeltas.map(specFromProto),
    weightsHash: h.weightsHash,
    weightsVersion: h.weightsVersion,
    held: h.held,
  };
}

function* chunkMessages<T>(tensors: readonly WireTensor[], maxMessageBytes: number, wrap: (chunk: WireChunk) => T): Generator<T> {
  for (const chunk of encodeTensors(tensors, { maxMessageBytes })) yield wrap(chunk);
}

/**
 * `pending` once settled if it settles before the event loop moves on (within the microtasks of the call
 * that is running: a held share that completed its step gets its REDUCE so), else undefined; `pending`
 * runs on either way, and its caller awaits it.
 */
async function atOnce<T>(pending: Promise<T>): Promise<T | undefined> {
  let immediate: NodeJS.Immediate | undefined;
  const later = new Promise<undefined>((resolve) => (immediate = setImmediate(resolve, undefined)));
  // Awaited by the caller when it loses the race; this only keeps a rejection meanwhile from being unhandled.
  pending.catch(() => undefined);
  try {
    return await Promise.race([pending, later]);
  } finally {
    clearImmediate(immediate);
  }
}

/** The order being decided for a SessionReady the coordinator stands in for. */
interface StandingOrder {
  ready: StandingReady;
  order: Promise<Order>;
}

/** The order `order` stands for, being decided now, or undefined when the worker sends its next ready itself. */
function stand(session: SessionOrders, ready: ReadyState, order: Order, gone: AbortSignal): StandingOrder | undefined {
  const after = SessionOrders.readyAfter(ready, order.assignment);
  if (!after) return undefined;
  const pending = session.next(after, gone);
  // Awaited by the stream's loop; this only keeps a failure meanwhile from counting as unhandled.
  pending.catch(() => undefined);
  return { ready: after, order: pending };
}

/**
 * The messages of one order: its ConfigState when the configuration moved, the StepAssignment, the update
 * chunks; `held` (a held share's answer) rides on the first of them.
 */
function* orderMessages(order: Order, held: HeldResult | undefined): Generator<SessionOrder> {
  if (order.config) yield { payload: { $case: 'config' as const, config: order.config }, heldAnswer: held };
  const a = order.assignment;
  yield { payload: { $case: 'assignment' as const, assignment: toStepAssignment(a) }, heldAnswer: order.config ? undefined : held };
  yield* chunkMessages(a.update.tensors, a.maxMessageBytes, (chunk) => ({ payload: { $case: 'chunk' as const, chunk } }));
}

/**
 * A Session stream: the first SessionReady opens the incarnation's session, and each SessionReady is
 * answered with one order (a ConfigState first when the configuration moved), its update chunks after it.
 * A REDUCE, and a TRAIN carrying its step's planned allreduce, stand for the worker's next SessionReady
 * (SessionOrders.readyAfter): the coordinator decides that order while the stream goes on, and sends it
 * unasked the moment it exists; meanwhile the worker's held shares (sent without a ready) are taken and
 * answered as they come, since the order may be waiting for one of them. A held share that carries a
 * ready is answered (HeldResult) with the order for that ready when the order is decided at once (it
 * completed the step: the REDUCE), in one write; otherwise at once on its own, the order following.
 * However the stream ends, the session is closed, which drops an incarnation that did not leave.
 */
async function* sessionMessages(job: JobContext, requests: AsyncIterable<SessionRequest>, gone: AbortSignal, bind: (workerId: string) => void): AsyncGenerator<SessionOrder> {
  let session: SessionOrders | undefined;
  let why = 'the worker closed it';
  const incoming = requests[Symbol.asyncIterator]();
  let nextRequest: Promise<IteratorResult<SessionRequest>> | undefined;
  let standing: StandingOrder | undefined;
  try {
    for (;;) {
      nextRequest ??= incoming.next();
      if (standing && session && (await Promise.race([standing.order.then(() => true), nextRequest.then(() => false)]))) {
        const order = await standing.order;
        yield* orderMessages(order, undefined);
        standing = stand(session, standing.ready, order, gone);
        continue;
      }
      const received = await nextRequest;
      nextRequest = undefined;
      if (received.done) break;
      const request = received.value;
      let ready: SessionReady | undefined;
      let held: HeldResult | undefined;
      if (request.payload?.$case === 'held') {
        const { header, ready: behind } = request.payload.held;
        if (!session) throw new InvalidResultError(header?.workerId ?? '', 'payload', 'Session: expected a SessionReady before a held share');
        if (!header) throw new InvalidResultError(session.workerId, 'header', 'Session: expected a GradientHeader in a held share, got none');
        held = await session.held(pushOf(header), gone);
        if (!behind) {
          yield { payload: { $case: 'heldResult' as const, heldResult: held } };
          continue;
        }
        ready = behind;
      } else if (request.payload?.$case === 'ready') ready = request.payload.ready;
      if (!ready) throw new InvalidResultError(session?.workerId ?? '', 'payload', 'Session: expected a SessionReady');
      if (session && ready.workerId !== session.workerId) {
        throw new InvalidResultError(ready.workerId, 'worker_id', `Session: expected worker_id '${session.workerId}' throughout, got '${ready.workerId}'`);
      }
      if (standing) {
        throw new InvalidResultError(ready.workerId, 'payload', 'Session: expected no SessionReady while the order its last order stands for is on its way');
      }
      if (!session) bind(ready.workerId);
      session ??= SessionOrders.open(job, ready.workerId, ready.incarnation);
      const pending = session.next(ready, gone);
      let order = held && (await atOnce(pending));
      if (held && !order) {
        yield { payload: { $case: 'heldResult' as const, heldResult: held } };
        held = undefined;
      }
      order ??= await pending;
      yield* orderMessages(order, held);
      standing = stand(session, ready, order, gone);
    }
  } catch (err) {
    why = err instanceof Error ? err.message : String(err);
    throw err;
  } finally {
    session?.close(gone.aborted ? 'the worker went away (cancelled, connection lost or keepalive unanswered)' : why);
  }
}

/** Whether `incarnation` (0: a client that sends none) is `workerId`'s live one. */
function isLiveIncarnation(job: JobContext, workerId: string, incarnation: number): boolean {
  return incarnation === 0 || job.members.get(workerId)?.incarnation === incarnation;
}

function* weightsMessages(job: JobContext, req: GetWeightsRequest): Generator<GetWeightsResponse> {
  const w = weightsFor(job, req.workerId, req.modelFingerprint, req.includeOptimizerState);
  yield {
    payload: {
      $case: 'manifest',
      manifest: {
        globalStep: w.globalStep,
        configVersion: w.configVersion,
        tensors: w.tensors.map((t) => specToProto(specOf(t))),
        optimizerStateIncluded: w.optimizerStateIncluded,
        optimizerIterations: w.optimizerIterations,
        optimizerVariableSteps: w.optimizerVariableSteps,
      },
    },
  };
  yield* chunkMessages(w.tensors, w.maxMessageBytes, (chunk) => ({ payload: { $case: 'chunk' as const, chunk } }));
}

async function receivePush(job: JobContext, messages: AsyncIterable<PushGradientsRequest>, bind: (workerId: string) => void): Promise<PushGradientsResponse> {
  const it = messages[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done || first.value.payload?.$case !== 'header') {
    throw new InvalidResultError('', 'header', 'PushGradients: expected a GradientHeader as the first message');
  }
  const header = first.value.payload.header;
  bind(header.workerId);
  async function* chunks(): AsyncGenerator<WireChunk> {
    for (;;) {
      const next = await it.next();
      if (next.done) return;
      if (next.value.payload?.$case !== 'chunk') {
        throw new InvalidResultError(header.workerId, 'chunk', 'PushGradients: expected only TensorChunks after the GradientHeader');
      }
      yield next.value.payload.chunk;
    }
  }
  const accepted = await receiveGradients(job, pushOf(header), chunks());
  return { globalStep: accepted.globalStep, workersReported: accepted.workersReported };
}

/**
 * Keepalive of the coordinator's connections for a job whose lease is `leaseMs`: a ping after half a
 * lease of silence, which the worker has a whole lease to answer (as a heartbeat: a worker busy in one
 * long kernel answers late, not never). A connection that died silently (a half-open TCP connection, its
 * Session stream with it) is cut within a lease and a half; the lease itself notices a silent worker first.
 * Never below a second, so a tiny test lease does not turn into a ping storm.
 */
export function sessionKeepalive(leaseMs: number): { keepaliveTimeMs: number; keepaliveTimeoutMs: number } {
  return { keepaliveTimeMs: Math.max(1000, Math.floor(leaseMs / 2)), keepaliveTimeoutMs: Math.max(2000, leaseMs) };
}

/**
 * The Coordinator service's handlers for `job`, to register with COORDINATOR_SERVICE. With `access`
 * secured, each call needs its role's certificate (call-access.ts), a worker speaks only for its own id,
 * and Register needs the join token.
 */
export function coordinatorService(job: JobContext, access = new CallAccess()): CoordinatorServer {
  return guardedService({
    register: unaryHandler(async (req: RegisterRequest, call): Promise<RegisterResponse> => {
      access.checkJoinToken(call);
      access.bindWorker(call, req.capabilities?.workerId ?? '');
      const registered = registerWorker(job, capabilitiesOf(req.capabilities));
      return { ...registered, incarnation: job.members.get(registered.workerId)?.incarnation ?? 0 };
    }),
    getConfig: unaryHandler(async (req, call): Promise<ConfigState> => {
      access.bindWorker(call, req.workerId);
      return configFor(job, req.workerId);
    }),
    heartbeat: unaryHandler(async (req, call) => {
      access.bindWorker(call, req.workerId);
      if (!isLiveIncarnation(job, req.workerId, req.incarnation)) {
        throw new WorkerGoneError(req.workerId, `is a newer incarnation than ${req.incarnation}`);
      }
      return heartbeat(job, req.workerId);
    }),
    // A Leave from an incarnation that was replaced must not remove the one that replaced it.
    leave: unaryHandler(async (req, call) => (access.bindWorker(call, req.workerId), isLiveIncarnation(job, req.workerId, req.incarnation)
      ? leaveJob(job, req.workerId, req.drain, req.reason)
      : { lastCountedStep: 0 })),
    getWeights: serverStreamHandler((req, call) => {
      access.bindWorker(call, req.workerId);
      return weightsMessages(job, req);
    }),
    session: duplexStreamHandler((requests, call, gone) => sessionMessages(job, requests, gone, (id) => access.bindWorker(call, id))),
    pushGradients: clientStreamHandler((messages, call) => receivePush(job, messages, (id) => access.bindWorker(call, id))),
    submitEval: unaryHandler(async (req, call) => (access.bindWorker(call, req.workerId), receiveEval(job, {
        workerId: req.workerId,
        globalStep: req.globalStep,
        epoch: req.epoch,
        sampleCount: req.sampleCount,
        lossSum: req.lossSum,
        correctTop1: req.correctCount,
        correctTop5: req.correctTop5,
        confusion: Uint32Array.from(req.confusionMatrix),
        microBatchIds: [...req.microBatchIds],
      }))),
    scale: unaryHandler(async (req) => scaleJob(job, req.desiredWorkers)),
  }, access);
}
