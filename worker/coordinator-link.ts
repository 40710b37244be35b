import * as os from 'node:os';
import {
  type AllreduceMember,
  type DuplexCall,
  type GroupLearningRates,
  GrpcStatus,
  JOIN_TOKEN_METADATA_KEY,
  type JobSpec,
  PARAM_GROUPS,
  type ParamGroupName,
  type ReadyState,
  type TlsCredentials,
  RpcError,
  TensorAssembler,
  UpdateKind,
  type WireTensor,
  clientStreamCall,
  compileJobSpec,
  createCoordinatorClient,
  encodeTensors,
  grpcChannelCredentials,
  openDuplexCall,
  serverStreamCall,
  specFromProto,
  specOf,
  specToProto,
  statusName,
  unaryCall,
} from '../common';
import {
  type ConfigState,
  type CoordinatorClient,
  type GradientHeader,
  type HeartbeatResponse,
  PROTOCOL_VERSION,
  type PushGradientsRequest,
  type RegisterResponse,
  SHARDWISE_VERSION,
  type HeldResult,
  type SessionOrder,
  type SessionRequest,
  type StepAssignment,
  StepKind,
  type SubmitEvalRequest,
  UpdateKind as ProtoUpdateKind,
  type WeightsManifest,
  type WorkerCapabilities,
  WorkerState,
} from '../proto';
import { type Assignment, AssignmentKind } from './assignment';
import type { WorkerConfig } from './config-sync';
import type { EvalShare } from './eval-runner';
import { AssignmentError, IncompatibleCoordinatorError } from './errors';
import type { HeartbeatAnswer, HeartbeatReport } from './heartbeat';
import type { WorkerLifecycle } from './lifecycle';
import type { CapabilityInput, Registration } from './registration';
import type { ComputedShare } from './share-runner';

/*
 * The worker's adapter to the wire: the only worker file that touches the generated proto types (an
 * eslint rule keeps it so). Each call takes and returns the worker's own types and converts at this edge,
 * as coordinator/coordinator-service.ts does on the other side.
 */

/** How the link talks to the coordinator. */
export interface CoordinatorLinkOptions {
  /** `host:port`. */
  target: string;
  /** Largest message accepted or sent on this connection. */
  maxMessageBytes: number;
  /** Deadline of unary calls. */
  rpcDeadlineMs: number;
  /** Deadline of GetWeights and PushGradients, and of each chunk of an order's update after its assignment. */
  transferDeadlineMs: number;
  /** Told the payload bytes of every tensor chunk and sample chunk sent. */
  onSentBytes?: (bytes: number) => void;
  /** Told the payload bytes of every tensor chunk and sample chunk received. */
  onReceivedBytes?: (bytes: number) => void;
  /** The worker's certificate, the CA and the join token: mutual TLS, and the token on Register. @default plaintext */
  tls?: TlsCredentials;
}

/** A full copy of the coordinator's weights (GetWeights). */
export interface FullWeights {
  /** Updates the copy includes: the replica's weights version once loaded. */
  globalStep: number;
  configVersion: number;
  tensors: Map<string, WireTensor>;
  /** When asked for: the optimizer's iteration count and each variable's update count (its slots are in `tensors`). */
  optimizer?: { iterations: number; variableSteps: Record<string, number> };
}

/**
 * The worker's side of the Coordinator service: one method per RPC, each a single attempt with a
 * deadline, taking and returning the worker's types only (the conversions are at the end of this file).
 * Retrying is the caller's decision (call-policy.ts).
 */
export class CoordinatorLink {
  readonly target: string;
  private readonly client: CoordinatorClient;

  constructor(private readonly options: CoordinatorLinkOptions) {
    this.target = options.target;
    this.client = createCoordinatorClient({
      target: options.target,
      maxMessageBytes: options.maxMessageBytes,
      credentials: options.tls && grpcChannelCredentials(options.tls),
    });
  }

  /**
   * Register: join the job. The answer (the job spec, the worker's id, its limits) is checked
   * ({@link parseRegistration}): one this build cannot use is IncompatibleCoordinatorError.
   */
  async register(input: CapabilityInput, signal?: AbortSignal): Promise<Registration> {
    const token = this.options.tls?.joinToken;
    const response = await unaryCall<RegisterResponse>('Coordinator/Register', this.unary(signal), (md, o, cb) => {
      if (token) md.set(JOIN_TOKEN_METADATA_KEY, token.toString('utf8'));
      return this.client.register({ capabilities: workerCapabilities(input) }, md, o, cb);
    });
    return parseRegistration(response, this.target);
  }

  /** GetConfig: the freeze state and learning rates in force, with their config version. */
  async getConfig(workerId: string, signal?: AbortSignal): Promise<WorkerConfig> {
    const state = await unaryCall<ConfigState>('Coordinator/GetConfig', this.unary(signal), (md, o, cb) => this.client.getConfig({ workerId }, md, o, cb));
    return configFromProto(state);
  }

  /** Heartbeat, with its own deadline (the heartbeat timer's, not the unary default). */
  async heartbeat(report: HeartbeatReport, deadlineMs: number, signal?: AbortSignal): Promise<HeartbeatAnswer> {
    const request = { ...report, state: lifecycleToProto(report.state) };
    const r = await unaryCall<HeartbeatResponse>('Coordinator/Heartbeat', { deadlineMs, signal }, (md, o, cb) => this.client.heartbeat(request, md, o, cb));
    return { configVersion: r.configVersion, drain: r.drain, leaseMs: r.leaseMs, voidedAllreduce: r.voidedAllreduce };
  }

  /** Leave: now, or (drain) after the share in progress. */
  async leave(notice: LeaveNotice, signal?: AbortSignal): Promise<void> {
    await unaryCall('Coordinator/Leave', this.unary(signal), (md, o, cb) => this.client.leave(notice, md, o, cb));
  }

  /** SubmitEval: the counts of an evaluation share of `globalStep`'s evaluation after `epoch`. */
  async submitEval(workerId: string, globalStep: number, epoch: number, share: EvalShare, signal?: AbortSignal): Promise<void> {
    const request = evalRequest(workerId, globalStep, epoch, share);
    await unaryCall('Coordinator/SubmitEval', this.unary(signal), (md, o, cb) => this.client.submitEval(request, md, o, cb));
  }

  /** GetWeights: the manifest, then every tensor it lists, checked (shapes, sizes, finite values) as it arrives. */
  async fetchWeights(workerId: string, modelFingerprint: string, signal?: AbortSignal, includeOptimizerState = false): Promise<FullWeights> {
    const method = 'Coordinator/GetWeights';
    let manifest: WeightsManifest | undefined;
    let assembler: TensorAssembler | undefined;
    const stream = serverStreamCall(method, { deadlineMs: this.options.transferDeadlineMs, signal }, (md, o) =>
      this.client.getWeights({ workerId, includeOptimizerState, modelFingerprint }, md, o),
    );
    for await (const message of stream) {
      const p = message.payload;
      if (p?.$case === 'manifest') {
        if (assembler) throw protocolError(method, 'expected one WeightsManifest, got a second');
        manifest = p.manifest;
        assembler = this.assembler(p.manifest.tensors.map(specFromProto));
      } else if (p?.$case === 'chunk') {
        if (!assembler) throw protocolError(method, `expected a WeightsManifest first, got a chunk of '${p.chunk.name}'`);
        assembler.add(p.chunk);
        this.options.onReceivedBytes?.(p.chunk.data.length);
      }
    }
    if (!manifest || !assembler) throw protocolError(method, 'expected a WeightsManifest, the stream ended without one');
    return {
      globalStep: manifest.globalStep,
      configVersion: manifest.configVersion,
      tensors: assembler.finish(),
      optimizer: manifest.optimizerStateIncluded
        ? { iterations: manifest.optimizerIterations, variableSteps: manifest.optimizerVariableSteps }
        : undefined,
    };
  }

  /**
   * Opens this incarnation's Session stream (no call deadline: every read on it has one, see
   * {@link OrderStream.next}). Aborting `signal` cancels it.
   */
  openSession(signal?: AbortSignal): OrderStream {
    const call = openDuplexCall<SessionRequest, SessionOrder>('Coordinator/Session', { signal }, (md, o) => this.client.session(md, o));
    return new OrderStream(call, this.options, (expected) => this.assembler(expected));
  }

  /**
   * PushGradients of a share: its header, then its sums in chunks within `maxMessageBytes` (the
   * negotiated limit), encoded as they are sent.
   */
  async pushGradients(workerId: string, share: ComputedShare, maxMessageBytes: number, signal?: AbortSignal): Promise<void> {
    const onSent = this.options.onSentBytes;
    function* counted(): Generator<PushGradientsRequest> {
      for (const m of gradientMessages(workerId, share, maxMessageBytes)()) {
        if (m.payload?.$case === 'chunk') onSent?.(m.payload.chunk.data.length);
        yield m;
      }
    }
    await clientStreamCall(
      'Coordinator/PushGradients',
      { deadlineMs: this.options.transferDeadlineMs, signal, idempotent: false },
      counted(),
      (md, o, cb) => this.client.pushGradients(md, o, cb),
    );
  }

  /** Closes the channel; calls in flight fail with CANCELLED. */
  close(): void {
    this.client.close();
  }

  private unary(signal: AbortSignal | undefined): { deadlineMs: number; signal?: AbortSignal } {
    return { deadlineMs: this.options.rpcDeadlineMs, signal };
  }

  private assembler(expected: ReturnType<typeof specFromProto>[]): TensorAssembler {
    return new TensorAssembler({ expected, checkFinite: true, maxMessageBytes: this.options.maxMessageBytes });
  }
}

/** The next order and the configuration pushed before it, if the coordinator's moved past the worker's. */
export interface PushedOrder {
  assignment: Assignment;
  config?: WorkerConfig;
}

/** A Leave: now, or (`drain`) once the share in progress is in. */
export interface LeaveNotice {
  workerId: string;
  incarnation: number;
  drain: boolean;
  reason: string;
}

/** How long the stream's reader waits for a message by itself: the waits that matter have deadlines of their own. */
const PUMP_IDLE_MS = 2_147_483_647;

/**
 * The worker's open Session stream: one order per {@link OrderStream.next}. One reader takes every message
 * as it arrives: a held share's answer settles at once (the worker may be in an exchange, not asking for
 * orders), an order's messages wait for {@link next}. A failed read (the stream ended, or an order or an
 * answer was late) ends the session for good: the coordinator sees the same end and drops the incarnation,
 * so the worker registers again rather than reopen it.
 */
export class OrderStream {
  private readonly method = 'Coordinator/Session';
  /**
   * The next order comes without a SessionReady: one went out behind a held share ({@link pushHeld}), or
   * the last order was a REDUCE or a TRAIN with its planned allreduce, which stand for one. The next
   * {@link next} only reads.
   */
  private readyAhead = false;

  /** Messages of orders read and not taken by {@link next} yet, in stream order. */
  private readonly inbox: SessionOrder[] = [];
  /** Wake the waits ({@link until}) for the next message. */
  private readonly waiters = new Set<() => void>();
  /** Why the stream failed: every wait fails with it. */
  private broken: unknown;

  /** Held shares sent whose answer was not read yet, oldest first. */
  private readonly answers: PendingAnswer[] = [];

  constructor(
    private readonly call: DuplexCall<SessionRequest, SessionOrder>,
    private readonly options: CoordinatorLinkOptions,
    private readonly assembler: (expected: ReturnType<typeof specFromProto>[]) => TensorAssembler,
  ) {
    void this.pump();
  }

  /** Settles once the stream is over. */
  get ended(): Promise<void> {
    return this.call.ended;
  }

  /**
   * Says the worker is ready (`ready`) and reads its next order: an optional ConfigState, the
   * StepAssignment within `ready.maxWaitMs` plus the RPC deadline (the coordinator answers WAIT by
   * max_wait_ms), then the update chunks it lists, each within the transfer deadline.
   */
  async next(ready: ReadyState): Promise<PushedOrder> {
    const { method } = this;
    if (!this.readyAhead) await this.call.send({ payload: { $case: 'ready', ready } });
    this.readyAhead = false;
    const firstByMs = ready.maxWaitMs + this.options.rpcDeadlineMs;
    let config: WorkerConfig | undefined;
    for (;;) {
      const p = (await this.take(firstByMs)).payload;
      if (p?.$case === 'config') {
        if (config) throw protocolError(method, 'expected one ConfigState before an assignment, got a second');
        config = configFromProto(p.config);
        continue;
      }
      if (p?.$case !== 'assignment') throw protocolError(method, `expected a StepAssignment, got ${p ? `a ${p.$case}` : 'an empty message'}`);
      const assignment = p.assignment;
      // A REDUCE, and a TRAIN with its planned allreduce, stand for the next SessionReady: the coordinator
      // sends the order after it unasked.
      this.readyAhead = assignment.kind === StepKind.REDUCE || (assignment.kind === StepKind.TRAIN && assignment.reduce !== undefined);
      const assembler = this.assembler(assignment.updateTensors.map(specFromProto));
      const s = assignment.samples;
      if (s) this.options.onReceivedBytes?.(s.images.length + s.labels.length);
      while (!assembler.complete) {
        const c = (await this.take(this.options.transferDeadlineMs)).payload;
        if (c?.$case !== 'chunk') throw protocolError(method, `expected the update's TensorChunks, got ${c ? `a ${c.$case}` : 'an empty message'}`);
        assembler.add(c.chunk);
        this.options.onReceivedBytes?.(c.chunk.data.length);
      }
      return { assignment: assignmentFromProto(assignment, assembler.finish()), config };
    }
  }

  /**
   * Sends a held share's header (the sums stay with the worker for the allreduce) with `ready` in the same
   * message, then reads the answer, which the coordinator sends before the order for `ready`, or on that
   * order's first message when it decided the order at once (the REDUCE of a share that completed the step).
   * That order is read by the next {@link next}, which does not send its ready again: the push costs no
   * round trip of its own on the step's path. (Two messages would cost one: the second leaves only once the
   * first was written out.) When the last order already stands for the next ready, the header goes alone,
   * and the order for that ready may come before the answer: it is kept for {@link next}.
   * @throws RpcError with the status of a refusal (FAILED_PRECONDITION: stale, INVALID_ARGUMENT: malformed).
   */
  async pushHeld(workerId: string, share: ComputedShare, ready: ReadyState): Promise<void> {
    await this.settle(await this.sendHeld(workerId, share, ready));
  }

  /**
   * Sends a held share's header as {@link pushHeld} does, without waiting for the answer: the stream's
   * reader settles the PendingAnswer returned when the answer comes (its promise rejected with an RpcError
   * on a refusal, or with the stream's error). The worker computes on when its last order stands for the
   * next ready (a TRAIN with its planned allreduce), the next order already on its way: the answer is then
   * off the step's path.
   */
  async sendHeld(workerId: string, share: ComputedShare, ready: ReadyState): Promise<PendingAnswer> {
    const header = gradientHeader(workerId, share, true);
    const answer = new PendingAnswer(this.method);
    // Queued before the send resolves: the answer may be read by a read already under way.
    this.answers.push(answer);
    await this.call.send({ payload: { $case: 'held', held: { header, ready: this.readyAhead ? undefined : ready } } });
    this.readyAhead = true;
    return answer;
  }

  /** Whether the last order stands for the next ready: the next order comes unasked ({@link sendHeld}). */
  get orderComing(): boolean {
    return this.readyAhead;
  }

  /** Waits, within the RPC deadline, for `answer` (a {@link sendHeld} answer) to come; throws a refusal. */
  async settle(answer: PendingAnswer): Promise<void> {
    await this.until(() => answer.settled, this.options.rpcDeadlineMs, 'the answer to a held share');
    return answer.promise;
  }

  /** The next order message within `timeoutMs`. */
  private async take(timeoutMs: number): Promise<SessionOrder> {
    await this.until(() => this.inbox.length > 0, timeoutMs, 'an order');
    return this.inbox.shift() as SessionOrder;
  }

  /**
   * Resolves once `done()` holds, checked as each message arrives; throws the stream's failure, or once
   * `timeoutMs` passed without it (the call is cancelled: the coordinator sees the session end).
   */
  private async until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!done()) {
      if (this.broken !== undefined) throw this.broken;
      const left = deadline - performance.now();
      if (left <= 0) {
        this.call.cancel();
        throw new RpcError(this.method, GrpcStatus.DEADLINE_EXCEEDED, statusName(GrpcStatus.DEADLINE_EXCEEDED), `no ${what} within ${timeoutMs} ms on the open call`, true);
      }
      let timer: NodeJS.Timeout | undefined;
      let wake!: () => void;
      await new Promise<void>((resolve) => {
        wake = resolve;
        this.waiters.add(wake);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.waiters.delete(wake);
    }
  }

  private wakeAll(): void {
    for (const wake of [...this.waiters]) wake();
  }

  /**
   * The stream's one reader: a held share's answer settles the oldest one waiting (a bare HeldResult ends
   * there), an order's message goes to the inbox. A failed read, or a message out of protocol, fails every
   * wait and every answer still waiting.
   */
  private async pump(): Promise<void> {
    for (;;) {
      try {
        const message = await this.call.read(PUMP_IDLE_MS);
        const p = message.payload;
        const answer = message.heldAnswer ?? (p?.$case === 'heldResult' ? p.heldResult : undefined);
        if (answer) {
          const waiting = this.answers.shift();
          if (!waiting) throw protocolError(this.method, 'got a HeldResult with no held share waiting for one');
          waiting.settle(answer);
        }
        if (!p) throw protocolError(this.method, 'expected an order or a HeldResult, got an empty message');
        if (p.$case !== 'heldResult') this.inbox.push(message);
      } catch (err) {
        this.broken = err;
        this.call.cancel();
        for (const waiting of this.answers.splice(0)) waiting.fail(err);
        this.wakeAll();
        return;
      }
      this.wakeAll();
    }
  }

  /** Ends the session (the coordinator drops this incarnation); idempotent. */
  close(): void {
    this.call.cancel();
  }
}

/** The answer to a held share, settled by the stream's reader when it comes. */
export class PendingAnswer {
  readonly promise: Promise<void>;
  /** The answer was read (or the stream failed). */
  settled = false;
  private resolve!: () => void;
  private reject!: (err: unknown) => void;

  constructor(private readonly method: string) {
    this.promise = new Promise<void>((resolve, reject) => ((this.resolve = resolve), (this.reject = reject)));
    this.promise.catch(() => undefined); // its taker handles a refusal; this keeps one not taken yet from counting as unhandled
  }

  settle({ code, details }: HeldResult): void {
    this.settled = true;
    if (code === GrpcStatus.OK) this.resolve();
    else this.reject(new RpcError(this.method, code, statusName(code), details, false));
  }

  fail(err: unknown): void {
    this.settled = true;
    this.reject(err);
  }
}

/** The peer broke the stream protocol (order of messages): INTERNAL, not retried. */
function protocolError(method: string, details: string): RpcError {
  return new RpcError(method, GrpcStatus.INTERNAL, statusName(GrpcStatus.INTERNAL), details, false);
}

// Conversions between the generated messages and the worker's types (exported for their tests).

/** The WorkerCapabilities of this process (protocol and package version, pid, hostname included). */
export function workerCapabilities(input: CapabilityInput): WorkerCapabilities {
  return {
    workerId: input.workerId,
    shardwiseVersion: SHARDWISE_VERSION,
    protocolVersion: PROTOCOL_VERSION,
    backend: input.backend,
    architecture: input.architecture ?? '',
    modelFingerprint: input.modelFingerprint ?? '',
    maxMessageBytes: input.maxMessageBytes,
    pid: process.pid,
    hostname: os.hostname(),
    dataAddress: input.dataAddress ?? '',
    processId: input.processId,
  };
}

/**
 * Checks and converts a RegisterResponse. A job spec this build cannot validate, or limits that make
 * no sense, mean the coordinator and this worker do not fit together: IncompatibleCoordinatorError.
 */
export function parseRegistration(response: RegisterResponse, target: string): Registration {
  let spec: JobSpec;
  try {
    spec = compileJobSpec(JSON.parse(response.jobSpecJson), `job spec from coordinator ${target}`);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new IncompatibleCoordinatorError(target, `its job spec does not validate in this worker build (${SHARDWISE_VERSION}): ${why}`, {
      cause: err,
    });
  }
  const positive: Array<[string, number]> = [
    ['max_message_bytes', response.maxMessageBytes],
    ['heartbeat_interval_ms', response.heartbeatIntervalMs],
    ['lease_ms', response.leaseMs],
  ];
  for (const [field, value] of positive) {
    if (!(Number.isInteger(value) && value > 0)) {
      throw new IncompatibleCoordinatorError(target, `expected a positive ${field} in its RegisterResponse, got ${value}`);
    }
  }
  if (response.workerId === '') throw new IncompatibleCoordinatorError(target, 'expected a worker id in its RegisterResponse, got none');
  return {
    workerId: response.workerId,
    spec,
    specJson: response.jobSpecJson,
    configVersion: response.configVersion,
    maxMessageBytes: response.maxMessageBytes,
    heartbeatIntervalMs: response.heartbeatIntervalMs,
    leaseMs: response.leaseMs,
    stepDeadlineMs: response.stepDeadlineMs,
    globalStep: response.globalStep,
    coordinatorVersion: response.coordinatorVersion,
    natsUrl: response.natsUrl === '' ? undefined : response.natsUrl,
    jobId: response.jobId === '' ? spec.name : response.jobId,
    incarnation: response.incarnation,
  };
}

/** A GetConfig answer as a {@link WorkerConfig}; groups other than backbone/head are ignored (a newer coordinator). */
export function configFromProto(state: ConfigState): WorkerConfig {
  const frozen: Record<ParamGroupName, boolean> = { backbone: false, head: false };
  const learningRates: Partial<Record<ParamGroupName, number>> = {};
  for (const g of state.groups) {
    if (!(PARAM_GROUPS as readonly string[]).includes(g.name)) continue;
    const name = g.name as ParamGroupName;
    frozen[name] = g.frozen;
    learningRates[name] = g.learningRate;
  }
  return { version: state.configVersion, frozen, learningRates };
}

const PROTO_STATES: Record<WorkerLifecycle, WorkerState> = {
  starting: WorkerState.STARTING,
  running: WorkerState.RUNNING,
  draining: WorkerState.DRAINING,
  stopped: WorkerState.STOPPED,
  failed: WorkerState.FAILED,
};

/** The lifecycle as heartbeats report it. */
export function lifecycleToProto(state: WorkerLifecycle): WorkerState {
  return PROTO_STATES[state];
}

/** The SubmitEval request of an evaluation share. */
export function evalRequest(workerId: string, globalStep: number, epoch: number, share: EvalShare): SubmitEvalRequest {
  const m = share.metrics;
  return {
    workerId,
    globalStep,
    epoch,
    sampleCount: m.count,
    lossSum: m.lossSum,
    correctCount: m.correctTop1,
    correctTop5: m.correctTop5,
    confusionMatrix: Array.from(m.confusion),
    microBatchIds: share.microBatchIds,
  };
}

/**
 * The PushGradients stream of a share: the GradientHeader (manifests of both tensor lists), then the
 * gradient chunks, then the statistic-delta chunks, each chunk within `maxMessageBytes`. A `held` share
 * sends the header alone: the sums stay with the worker for the step's allreduce.
 */
export function gradientMessages(workerId: string, share: ComputedShare, maxMessageBytes: number, held = false): () => Iterable<PushGradientsRequest> {
  return function* () {
    yield { payload: { $case: 'header', header: gradientHeader(workerId, share, held) } };
    if (held) return;
    for (const chunk of encodeTensors([...share.grads, ...share.statDeltas], { maxMessageBytes })) {
      yield { payload: { $case: 'chunk', chunk } };
    }
  };
}

/** A share's GradientHeader: its step, counts and the manifests of both tensor lists; `held`: no chunks follow. */
export function gradientHeader(workerId: string, share: ComputedShare, held: boolean): GradientHeader {
  return {
    workerId,
    globalStep: share.globalStep,
    configVersion: share.configVersion,
    sampleCount: share.sampleCount,
    lossSum: share.lossSum,
    correctCount: share.correctTop1,
    correctTop5: share.correctTop5,
    tensors: share.grads.map((t) => specToProto(specOf(t))),
    statDeltas: share.statDeltas.map((t) => specToProto(specOf(t))),
    microBatchIds: share.microBatchIds,
    weightsHash: share.weightsHash,
    weightsVersion: share.weightsVersion,
    held,
  };
}

const KINDS: Partial<Record<StepKind, AssignmentKind>> = {
  [StepKind.TRAIN]: AssignmentKind.Train,
  [StepKind.EVAL]: AssignmentKind.Eval,
  [StepKind.WAIT]: AssignmentKind.Wait,
  [StepKind.STOP]: AssignmentKind.Stop,
  [StepKind.REDUCE]: AssignmentKind.Reduce,
};

const UPDATES: Partial<Record<ProtoUpdateKind, UpdateKind>> = {
  [ProtoUpdateKind.NONE]: UpdateKind.None,
  [ProtoUpdateKind.WEIGHTS]: UpdateKind.Weights,
  [ProtoUpdateKind.WEIGHTS_REF]: UpdateKind.WeightsRef,
  [ProtoUpdateKind.APPLY]: UpdateKind.Apply,
};

/**
 * The generated StepAssignment (plus the update tensors reassembled from the chunks after it) as an
 * {@link Assignment}. An unspecified kind is an AssignmentError; an unspecified update kind on a
 * message without update tensors (WAIT/STOP from a terse coordinator) reads as 'none'.
 */
export function assignmentFromProto(a: StepAssignment, updateTensors: ReadonlyMap<string, WireTensor>): Assignment {
  const kind = KINDS[a.kind];
  if (kind === undefined) {
    throw new AssignmentError('kind', a.globalStep, `expected TRAIN, EVAL, WAIT, STOP or REDUCE, got enum value ${a.kind}`);
  }
  let update = UPDATES[a.updateKind];
  if (update === undefined) {
    if (a.updateKind !== ProtoUpdateKind.UNSPECIFIED || a.updateTensors.length > 0) {
      throw new AssignmentError('update_kind', a.globalStep, `expected NONE, WEIGHTS, WEIGHTS_REF or APPLY, got enum value ${a.updateKind}`);
    }
    update = UpdateKind.None;
  }
  // WEIGHTS carries the new values; APPLY carries the reduced sums to a worker that was no member of the allreduce.
  if (update !== UpdateKind.Weights && update !== UpdateKind.Apply && updateTensors.size > 0) {
    throw new AssignmentError('update_tensors', a.globalStep, `expected no tensors with update kind '${update}', got ${updateTensors.size}`);
  }
  if (kind === AssignmentKind.Reduce && !a.reduce) throw new AssignmentError('reduce', a.globalStep, 'expected a ReduceSpec with STEP_KIND_REDUCE, got none');
  if (update === UpdateKind.Apply && !a.apply) throw new AssignmentError('apply', a.globalStep, 'expected an ApplySpec with UPDATE_KIND_APPLY, got none');
  const s = a.samples;
  const r = a.reduce;
  const apply = a.apply && {
    key: a.apply.key,
    learningRates: Object.fromEntries(a.apply.groups.map((g) => [g.name, g.learningRate])) as GroupLearningRates,
    sampleCount: a.apply.sampleCount,
    microBatchCount: a.apply.microBatchCount,
  };
  return {
    kind,
    globalStep: a.globalStep,
    epoch: a.epoch,
    configVersion: a.configVersion,
    microBatches: a.microBatches.map((mb) => ({ id: mb.id, sampleIds: Uint32Array.from(mb.sampleIndices) })),
    samples: s ? { sampleIds: Uint32Array.from(s.sampleIndices), labels: s.labels, images: s.images } : undefined,
    update: { kind: update, step: a.updateStep, tensors: updateTensors, apply },
    weightsVersion: a.weightsVersion,
    reportWeightsHash: a.reportWeightsHash,
    stepMicroBatchCount: a.stepMicroBatchCount,
    retryAfterMs: a.retryAfterMs,
    waitReason: a.waitReason,
    reduce: r && {
      key: r.key,
      members: r.members.map((m): AllreduceMember => m.observer
        ? { id: m.id, address: m.address, role: 'observer' }
        : { id: m.id, address: m.address, role: 'contributor', parts: m.parts.map((p) => ({ start: p.start, end: p.end })) }),
      rank: r.rank,
      tensors: r.tensors.map(specFromProto),
      gradientTensorCount: r.gradientTensorCount,
      timeoutMs: r.timeoutMs,
    },
  };
}
