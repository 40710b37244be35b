import {
  GrpcStatus,
  RpcError,
  TensorAssembler,
  type WireTensor,
  clientStreamCall,
  createCoordinatorClient,
  serverStreamCall,
  specFromProto,
  statusName,
  unaryCall,
} from '../common';
import {
  type ConfigState,
  type CoordinatorClient,
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
  type PullStepRequest,
  type StepAssignment,
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
  /** Deadline of GetWeights and PushGradients, and of a PullStep's update after its assignment. */
  transferDeadlineMs: number;
  /** Told the payload bytes of every tensor chunk and sample chunk sent. */
  onSentBytes?: (bytes: number) => void;
  /** Told the payload bytes of every tensor chunk and sample chunk received. */
  onReceivedBytes?: (bytes: number) => void;
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
    this.client = createCoordinatorClient({ target: options.target, maxMessageBytes: options.maxMessageBytes });
  }

  /** Register: join the job (the answer carries the job spec and the worker's id). */
  register(capabilities: WorkerCapabilities, signal?: AbortSignal): Promise<RegisterResponse> {
    return unaryCall('Coordinator/Register', this.unary(signal), (md, o, cb) => this.client.register({ capabilities }, md, o, cb));
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
   * PullStep: waits up to `request.maxWaitMs` for an assignment, then reads the update tensors that
   * follow it. The whole call has the transfer deadline, and the assignment itself must arrive within
   * maxWaitMs plus the unary deadline (else DEADLINE_EXCEEDED), so a coordinator that accepted the call
   * and went silent is noticed as quickly as one that answers nothing at all.
   */
  async pullStep(request: PullStepRequest, signal?: AbortSignal): Promise<Assignment> {
    const method = 'Coordinator/PullStep';
    const local = new AbortController();
    const firstByMs = request.maxWaitMs + this.options.rpcDeadlineMs;
    const watchdog = setTimeout(() => local.abort(), firstByMs);
    const onAbort = (): void => local.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    let assignment: StepAssignment | undefined;
    let assembler: TensorAssembler | undefined;
    try {
      const stream = serverStreamCall(method, { deadlineMs: firstByMs + this.options.transferDeadlineMs, signal: local.signal }, (md, o) =>
        this.client.pullStep(request, md, o),
      );
      for await (const message of stream) {
        const p = message.payload;
        if (p?.$case === 'assignment') {
          if (assignment) throw protocolError(method, 'expected one StepAssignment, got a second');
          clearTimeout(watchdog);
          assignment = p.assignment;
          assembler = this.assembler(assignment.updateTensors.map(specFromProto));
          const s = assignment.samples;
          if (s) this.options.onReceivedBytes?.(s.images.length + s.labels.length);
        } else if (p?.$case === 'chunk') {
          if (!assembler) throw protocolError(method, `expected a StepAssignment first, got a chunk of '${p.chunk.name}'`);
          assembler.add(p.chunk);
          this.options.onReceivedBytes?.(p.chunk.data.length);
        }
      }
    } catch (err) {
      if (local.signal.aborted && !signal?.aborted && !assignment) {
        throw new RpcError(method, GrpcStatus.DEADLINE_EXCEEDED, statusName(GrpcStatus.DEADLINE_EXCEEDED),
          `no assignment within ${firstByMs} ms (max_wait_ms ${request.maxWaitMs} + ${this.options.rpcDeadlineMs})`, true, { cause: err });
      }
      throw err;
    } finally {
      clearTimeout(watchdog);
      signal?.removeEventListener('abort', onAbort);
    }
    if (!assignment || !assembler) throw protocolError(method, 'expected a StepAssignment, the stream ended without one');
    return assignmentFromProto(assignment, assembler.finish());
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

/** The peer broke the stream protocol (order of messages): INTERNAL, not retried. */
function protocolError(method: string, details: string): RpcError {
  return new RpcError(method, GrpcStatus.INTERNAL, statusName(GrpcStatus.INTERNAL), details, false);
}
