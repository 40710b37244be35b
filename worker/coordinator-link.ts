import {
  type DuplexCall,
  GrpcStatus,
  JOIN_TOKEN_METADATA_KEY,
  type TlsCredentials,
  RpcError,
  TensorAssembler,
  type WireTensor,
  clientStreamCall,
  createCoordinatorClient,
  grpcChannelCredentials,
  openDuplexCall,
  serverStreamCall,
  specFromProto,
  statusName,
  unaryCall,
} from '../common';
import {
  type ConfigState,
  type CoordinatorClient,
  type GradientHeader,
  type HeldResult,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type LeaveRequest,
  type LeaveResponse,
  type PushGradientsRequest,
  type PushGradientsResponse,
  type RegisterResponse,
  type SubmitEvalRequest,
  type SubmitEvalResponse,
  type WorkerCapabilities,
  type SessionOrder,
  type SessionReady,
  type SessionRequest,
  type WeightsManifest,
} from '../proto';
import { type Assignment, assignmentFromProto } from './assignment';

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
 * deadline, speaking the worker's types where they differ from the generated ones (assignments,
 * reassembled tensors). Retrying is the caller's decision (call-policy.ts).
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

  /** Register: join the job (the answer carries the job spec and the worker's id). */
  register(capabilities: WorkerCapabilities, signal?: AbortSignal): Promise<RegisterResponse> {
    const token = this.options.tls?.joinToken;
    return unaryCall('Coordinator/Register', this.unary(signal), (md, o, cb) => {
      if (token) md.set(JOIN_TOKEN_METADATA_KEY, token.toString('utf8'));
      return this.client.register({ capabilities }, md, o, cb);
    });
  }

  /** GetConfig: the freeze state and learning rates in force, with their config version. */
  getConfig(workerId: string, signal?: AbortSignal): Promise<ConfigState> {
    return unaryCall('Coordinator/GetConfig', this.unary(signal), (md, o, cb) => this.client.getConfig({ workerId }, md, o, cb));
  }

  /** Heartbeat, with its own deadline (the heartbeat timer's, not the unary default). */
  heartbeat(request: HeartbeatRequest, deadlineMs: number, signal?: AbortSignal): Promise<HeartbeatResponse> {
    return unaryCall('Coordinator/Heartbeat', { deadlineMs, signal }, (md, o, cb) => this.client.heartbeat(request, md, o, cb));
  }

  /** Leave: now, or (drain) after the share in progress. */
  leave(request: LeaveRequest, signal?: AbortSignal): Promise<LeaveResponse> {
    return unaryCall('Coordinator/Leave', this.unary(signal), (md, o, cb) => this.client.leave(request, md, o, cb));
  }

  /** SubmitEval: the counts of an evaluation share. */
  submitEval(request: SubmitEvalRequest, signal?: AbortSignal): Promise<SubmitEvalResponse> {
    return unaryCall('Coordinator/SubmitEval', this.unary(signal), (md, o, cb) => this.client.submitEval(request, md, o, cb));
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
   * PushGradients with the messages `messages()` yields (a header, then chunks). A function, not a list,
   * so that a retry re-encodes from the same tensors instead of holding every chunk twice.
   */
  pushGradients(messages: () => Iterable<PushGradientsRequest>, signal?: AbortSignal): Promise<PushGradientsResponse> {
    const onSent = this.options.onSentBytes;
    function* counted(): Generator<PushGradientsRequest> {
      for (const m of messages()) {
        if (m.payload?.$case === 'chunk') onSent?.(m.payload.chunk.data.length);
        yield m;
      }
    }
    return clientStreamCall(
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
  config?: ConfigState;
}

/**
 * The worker's open Session stream: one order per {@link OrderStream.next}. A failed read (the stream
 * ended, or an order was late) ends the session for good: the coordinator sees the same end and drops the
 * incarnation, so the worker registers again rather than reopen it.
 */
export class OrderStream {
  private readonly method = 'Coordinator/Session';
  /** A SessionReady went out behind a held share ({@link pushHeld}): the next {@link next} only reads. */
  private readyAhead = false;

  constructor(
    private readonly call: DuplexCall<SessionRequest, SessionOrder>,
    private readonly options: CoordinatorLinkOptions,
    private readonly assembler: (expected: ReturnType<typeof specFromProto>[]) => TensorAssembler,
  ) {}

  /** Settles once the stream is over. */
  get ended(): Promise<void> {
    return this.call.ended;
  }

  /**
   * Says the worker is ready (`ready`) and reads its next order: an optional ConfigState, the
   * StepAssignment within `ready.maxWaitMs` plus the RPC deadline (the coordinator answers WAIT by
   * max_wait_ms), then the update chunks it lists, each within the transfer deadline.
   */
  async next(ready: SessionReady): Promise<PushedOrder> {
    const { method } = this;
    if (!this.readyAhead) await this.call.send({ payload: { $case: 'ready', ready } });
    this.readyAhead = false;
    const firstByMs = ready.maxWaitMs + this.options.rpcDeadlineMs;
    let config: ConfigState | undefined;
    for (;;) {
      const p = (await this.call.read(firstByMs)).payload;
      if (p?.$case === 'config') {
        if (config) throw protocolError(method, 'expected one ConfigState before an assignment, got a second');
        config = p.config;
        continue;
      }
      if (p?.$case !== 'assignment') throw protocolError(method, `expected a StepAssignment, got ${p ? `a ${p.$case}` : 'an empty message'}`);
      const assignment = p.assignment;
      const assembler = this.assembler(assignment.updateTensors.map(specFromProto));
      const s = assignment.samples;
      if (s) this.options.onReceivedBytes?.(s.images.length + s.labels.length);
      while (!assembler.complete) {
        const c = (await this.call.read(this.options.transferDeadlineMs)).payload;
        if (c?.$case !== 'chunk') throw protocolError(method, `expected the update's TensorChunks, got ${c ? `a ${c.$case}` : 'an empty message'}`);
        assembler.add(c.chunk);
        this.options.onReceivedBytes?.(c.chunk.data.length);
      }
      return { assignment: assignmentFromProto(assignment, assembler.finish()), config };
    }
  }

  /**
   * Sends a held share's header (the sums stay with the worker for the allreduce) and, right behind it
   * without waiting for the answer, `ready`; then reads the answer, which the coordinator sends before the
   * order for `ready`. That order (the REDUCE once every share is in) is read by the next {@link next},
   * which does not send its ready again: the push costs no round trip of its own on the step's path.
   * @throws RpcError with the status of a refusal (FAILED_PRECONDITION: stale, INVALID_ARGUMENT: malformed).
   */
  async pushHeld(header: GradientHeader, ready: SessionReady): Promise<HeldResult> {
    await this.call.send({ payload: { $case: 'held', held: header } });
    await this.call.send({ payload: { $case: 'ready', ready } });
    this.readyAhead = true;
    const p = (await this.call.read(this.options.rpcDeadlineMs)).payload;
    if (p?.$case !== 'heldResult') throw protocolError(this.method, `expected a HeldResult, got ${p ? `a ${p.$case}` : 'an empty message'}`);
    const { code, details } = p.heldResult;
    if (code !== GrpcStatus.OK) throw new RpcError(this.method, code, statusName(code), details, false);
    return p.heldResult;
  }

  /** Ends the session (the coordinator drops this incarnation); idempotent. */
  close(): void {
    this.call.cancel();
  }
}

/** The peer broke the stream protocol (order of messages): INTERNAL, not retried. */
function protocolError(method: string, details: string): RpcError {
  return new RpcError(method, GrpcStatus.INTERNAL, statusName(GrpcStatus.INTERNAL), details, false);
}
