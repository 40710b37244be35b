import type { ChannelCredentials } from '@grpc/grpc-js';
// A worker played by the test over a raw gRPC client: it speaks the wire contract message by message, so
// tests can follow it exactly (the real computeShare on the samples it receives) or break it on purpose.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  Augmenter,
  buildModel,
  type Cifar10Images,
  clientStreamCall,
  computeShare,
  createCoordinatorClient,
  JOIN_TOKEN_METADATA_KEY,
  type DuplexCall,
  disposeModelParts,
  encodeCifar10Records,
  encodeTensors,
  evaluateBatch,
  type JobSpec,
  makeBatch,
  type ModelParts,
  modelFingerprint,
  namedVariables,
  openDuplexCall,
  Rng,
  serverStreamCall,
  type ShareResult,
  specFromProto,
  TensorAssembler,
  toTensorBatch,
  unaryCall,
  type WireTensor,
  weightsHash,
} from '../common';
import {
  type ConfigState,
  type CoordinatorClient,
  type GetWeightsResponse,
  type GradientHeader,
  type HeartbeatResponse,
  type HeldResult,
  type LeaveResponse,
  PROTOCOL_VERSION,
  type PushGradientsRequest,
  type PushGradientsResponse,
  type RegisterResponse,
  SHARDWISE_VERSION,
  type SessionOrder,
  type SessionReady,
  type SessionRequest,
  type StepAssignment,
  StepKind,
  type SubmitEvalRequest,
  type SubmitEvalResponse,
  UpdateKind,
  type WorkerCapabilities,
} from '../proto';

const CALL_DEADLINE_MS = 20_000;

/** A folder holding `count` random CIFAR-format images as data_batch_1.bin; remove it with fs.rmSync. */
export function writeTinyCifar(count: number, seed: number): string {
  const rng = new Rng(seed);
  const images: Cifar10Images = {
    images: Uint8Array.from({ length: count * 3072 }, () => rng.int(256)),
    labels: Uint8Array.from({ length: count }, () => rng.int(10)),
    count,
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-coordinator-data-'));
  fs.writeFileSync(path.join(dir, 'data_batch_1.bin'), encodeCifar10Records(images));
  return dir;
}

/** A pulled assignment with its update tensors already applied to the replica. */
export interface Pulled {
  assignment: StepAssignment;
  /** The update tensors that came with it. */
  update: Map<string, WireTensor>;
}

/** The local image set of an assignment's samples and its micro-batches with local indices. */
function localShare(a: StepAssignment): { data: Cifar10Images; microBatches: { id: number; sampleIndices: Uint32Array }[]; ids: Uint32Array } {
  const s = a.samples;
  if (!s) throw new Error(`assignment for step ${a.globalStep} carries no samples`);
  const data: Cifar10Images = { images: new Uint8Array(s.images), labels: new Uint8Array(s.labels), count: s.sampleIndices.length };
  let next = 0;
  const microBatches = a.microBatches.map((mb) => ({
    id: mb.id,
    sampleIndices: Uint32Array.from(mb.sampleIndices, () => next++),
  }));
  return { data, microBatches, ids: Uint32Array.from(s.sampleIndices) };
}

/** One worker over a raw client. */
export class FakeWorker {
  readonly client: CoordinatorClient;
  id = '';
  spec!: JobSpec;
  parts: ModelParts | null = null;
  registration!: RegisterResponse;
  weightsVersion = -1;
  configVersion = -1;
  frozen = false;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  /** The Session stream of the current registration, opened at the first pull. */
  private orders: DuplexCall<SessionRequest, SessionOrder> | undefined;
  /** An order's first message that came with a held share's answer, for the next {@link readOrder}. */
  private unread: SessionOrder | undefined;

  private readonly joinToken?: string;

  /** `credentials` and `joinToken`: a worker of a coordinator that requires mutual TLS (tests of its refusals). */
  constructor(readonly address: string, options: { maxMessageBytes?: number; credentials?: ChannelCredentials; joinToken?: string } = {}) {
    this.client = createCoordinatorClient({ target: address, maxMessageBytes: options.maxMessageBytes ?? 64 * 1024 * 1024, credentials: options.credentials });
    this.joinToken = options.joinToken;
  }

  /** Registers with `overrides` of the honest capabilities. */
  async register(id: string, overrides: Partial<WorkerCapabilities> = {}): Promise<RegisterResponse> {
    const capabilities: WorkerCapabilities = {
      workerId: id,
      shardwiseVersion: SHARDWISE_VERSION,
      protocolVersion: PROTOCOL_VERSION,
      backend: 'test',
      architecture: '',
      modelFingerprint: '',
      maxMessageBytes: 0,
      pid: process.pid,
      hostname: 'test',
      dataAddress: '',
      ...overrides,
    } as WorkerCapabilities;
    const res = await unaryCall<RegisterResponse>('Register', { deadlineMs: CALL_DEADLINE_MS }, (md, o, cb) => {
      if (this.joinToken !== undefined) md.set(JOIN_TOKEN_METADATA_KEY, this.joinToken);
      return this.client.register({ capabilities }, md, o, cb);
    });
    this.registration = res;
    this.id = res.workerId;
    // The old incarnation's session ends after the new one exists, so its end drops nothing that is live.
    this.orders?.cancel();
    this.orders = undefined;
    this.spec = JSON.parse(res.jobSpecJson) as JobSpec;
    return res;
  }

  /** Builds the model from the job spec (once), fetches the config and the weights. */
  async join(id: string, overrides: Partial<WorkerCapabilities> = {}): Promise<this> {
    await this.register(id, overrides);
    this.parts ??= await buildModel(this.spec.model, this.spec.seed);
    await this.getConfig();
    await this.getWeights();
    return this;
  }

  async getConfig(): Promise<ConfigState> {
    const c = await unaryCall<ConfigState>('GetConfig', { deadlineMs: CALL_DEADLINE_MS }, (md, o, cb) =>
      this.client.getConfig({ workerId: this.id }, md, o, cb));
    this.configVersion = c.configVersion;
    this.frozen = c.groups.find((g) => g.name === 'backbone')?.frozen ?? false;
    return c;
  }

  /** GetWeights and writes every tensor into the replica. */
  async getWeights(fingerprint?: string): Promise<void> {
    const parts = this.model();
    let version = -1;
    let assembler: TensorAssembler | undefined;
    for await (const msg of serverStreamCall<GetWeightsResponse>('GetWeights', { deadlineMs: CALL_DEADLINE_MS }, (md, o) =>
      this.client.getWeights({ workerId: this.id, includeOptimizerState: false, modelFingerprint: fingerprint ?? modelFingerprint(parts) }, md, o))) {
      if (msg.payload?.$case === 'manifest') {
        version = msg.payload.manifest.globalStep;
        assembler = new TensorAssembler({ expected: msg.payload.manifest.tensors.map(specFromProto) });
      } else if (msg.payload?.$case === 'chunk') {
        assembler?.add(msg.payload.chunk);
      }
    }
    this.write(assembler?.finish() ?? new Map());
    this.weightsVersion = version;
  }

  /** The live registration's incarnation; 0 (a client that sends none) before any, as a stranger's calls are. */
  get incarnation(): number {
    return (this.registration as RegisterResponse | undefined)?.incarnation ?? 0;
  }

  async heartbeat(): Promise<HeartbeatResponse> {
    return unaryCall<HeartbeatResponse>('Heartbeat', { deadlineMs: CALL_DEADLINE_MS }, (md, o, cb) =>
      this.client.heartbeat({ workerId: this.id, state: 2, lastCompletedStep: 0, configVersion: Math.max(0, this.configVersion),
        incarnation: this.incarnation }, md, o, cb));
  }

  /** Heartbeats on a timer, as a real worker does beside its compute. */
  startHeartbeats(intervalMs: number): void {
    this.heartbeatTimer = setInterval(() => void this.heartbeat().catch(() => undefined), intervalMs);
  }

  stopHeartbeats(): void {
    clearInterval(this.heartbeatTimer);
  }

  /**
   * Asks for the next order on the Session stream (opened at the first pull of a registration); applies
   * a pushed config and the update that comes with the assignment (GetWeights on WEIGHTS_REF).
   */
  async pull(maxWaitMs = 5000): Promise<Pulled> {
    this.orders ??= openDuplexCall<SessionRequest, SessionOrder>('Session', {}, (md, o) => this.client.session(md, o));
    await this.orders.send({ payload: { $case: 'ready', ready: this.ready(maxWaitMs) } });
    return this.readOrder(maxWaitMs);
  }

  /** Reads the order for a SessionReady already sent, as {@link pull} does after sending one. */
  async readOrder(maxWaitMs = 5000): Promise<Pulled> {
    const orders = this.orders;
    if (!orders) throw new Error('Session: no stream open, pull() first');
    let assignment: StepAssignment | undefined;
    while (!assignment) {
      const early = this.unread;
      this.unread = undefined;
      const p = (early ?? await orders.read(maxWaitMs + CALL_DEADLINE_MS)).payload;
      if (p?.$case === 'config') {
        this.configVersion = p.config.configVersion;
        this.frozen = p.config.groups.find((g) => g.name === 'backbone')?.frozen ?? false;
      } else if (p?.$case === 'assignment') assignment = p.assignment;
      else throw new Error(`Session: expected a ConfigState or a StepAssignment, got ${p?.$case}`);
    }
    const assembler = new TensorAssembler({ expected: assignment.updateTensors.map(specFromProto) });
    while (!assembler.complete) {
      const p = (await orders.read(CALL_DEADLINE_MS)).payload;
      if (p?.$case !== 'chunk') throw new Error(`Session: expected an update chunk, got ${p?.$case}`);
      assembler.add(p.chunk);
    }
    const update = assembler.finish();
    if (assignment.updateKind === UpdateKind.WEIGHTS) {
      this.write(update);
      this.weightsVersion = assignment.weightsVersion;
    } else if (assignment.updateKind === UpdateKind.WEIGHTS_REF && this.parts) {
      await this.getWeights();
    }
    if (this.parts && assignment.configVersion > this.configVersion) await this.getConfig();
    return { assignment, update };
  }

  private ready(maxWaitMs: number): SessionReady {
    return {
      workerId: this.id, incarnation: this.incarnation, lastCompletedStep: 0,
      configVersion: Math.max(0, this.configVersion), maxWaitMs, weightsVersion: Math.max(0, this.weightsVersion), reducedKey: '',
    };
  }

  /** Pulls until the assignment is of `kind` (skipping WAITs); fails on anything else. */
  async pullUntil(kind: StepKind, maxWaitMs = 5000): Promise<StepAssignment> {
    for (let k = 0; k < 3; k++) {
      const { assignment } = await this.pull(maxWaitMs);
      if (assignment.kind === kind) return assignment;
      if (assignment.kind !== StepKind.WAIT) throw new Error(`expected ${StepKind[kind]}, got ${StepKind[assignment.kind]}`);
    }
    throw new Error(`no ${StepKind[kind]} assignment after 3 pulls of up to ${maxWaitMs} ms`);
  }

  /** The real computeShare on the received samples, with the worker's replica. */
  computeShare(a: StepAssignment): ShareResult {
    const { data, microBatches, ids } = localShare(a);
    return computeShare(this.model(), {
      data,
      microBatches,
      sampleIds: ids,
      augmenter: new Augmenter(this.spec.data.augment),
      jobSeed: this.spec.seed,
      epoch: a.epoch,
      globalStep: a.globalStep,
      backboneFrozen: this.frozen,
    });
  }

  /**
   * The PushGradients messages of a share (disposes its tensors). `edit` may corrupt them: `tensors`
   * replaces what is sent (the manifests follow it), `header` overrides header fields.
   */
  shareMessages(a: StepAssignment, r: ShareResult, edit: {
    header?: Partial<GradientHeader>;
    tensors?: (t: WireTensor[]) => WireTensor[];
    maxMessageBytes?: number;
  } = {}): PushGradientsRequest[] {
    const asWire = (m: Map<string, tf.Tensor>): WireTensor[] =>
      [...m].map(([name, t]) => ({ name, dtype: 'float32' as const, shape: t.shape, data: Float32Array.from(t.dataSync() as Float32Array) }));
    const grads = asWire(r.grads);
    const deltas = asWire(r.movingStatDeltas);
    tf.dispose([...r.grads.values(), ...r.movingStatDeltas.values()]);
    const tensors = edit.tensors ? edit.tensors([...grads, ...deltas]) : [...grads, ...deltas];
    const deltaNames = new Set(deltas.map((t) => t.name));
    const spec = (t: WireTensor) => ({ name: t.name, dtype: 1, shape: [...t.shape] });
    const header: GradientHeader = {
      workerId: this.id,
      globalStep: a.globalStep,
      configVersion: a.configVersion,
      sampleCount: r.count,
      lossSum: r.lossSum,
      correctCount: r.correctTop1,
      correctTop5: r.correctTop5,
      tensors: tensors.filter((t) => !deltaNames.has(t.name)).map(spec),
      microBatchIds: a.microBatches.map((mb) => mb.id),
      statDeltas: tensors.filter((t) => deltaNames.has(t.name)).map(spec),
      weightsHash: a.reportWeightsHash ? weightsHash(this.model()) : '',
      weightsVersion: this.weightsVersion,
      held: false,
      ...edit.header,
    } as GradientHeader;
    const chunks = [...encodeTensors(tensors, { maxMessageBytes: edit.maxMessageBytes ?? this.registration.maxMessageBytes })];
    return [{ payload: { $case: 'header', header } }, ...chunks.map((chunk) => ({ payload: { $case: 'chunk' as const, chunk } }))];
  }

  /**
   * Sends a share's header on the Session stream as a held share, with a SessionReady in the same message
   * when `readyBehind`, and reads the answer the coordinator sends: a HeldResult, or the order for that
   * ready carrying it (`withOrder`). The order is then read by {@link readOrder}.
   */
  async holdOnSession(header: GradientHeader, readyBehind: boolean): Promise<HeldResult & { withOrder: boolean }> {
    this.orders ??= openDuplexCall<SessionRequest, SessionOrder>('Session', {}, (md, o) => this.client.session(md, o));
    const ready = readyBehind ? this.ready(5000) : undefined;
    await this.orders.send({ payload: { $case: 'held', held: { header: { ...header, held: true }, ready } } });
    const message = await this.orders.read(CALL_DEADLINE_MS);
    if (message.heldAnswer) {
      this.unread = message;
      return { ...message.heldAnswer, withOrder: true };
    }
    const p = message.payload;
    if (p?.$case !== 'heldResult') throw new Error(`Session: expected a HeldResult, got ${p?.$case}`);
    return { ...p.heldResult, withOrder: false };
  }

  async push(messages: PushGradientsRequest[]): Promise<PushGradientsResponse> {
    return clientStreamCall<PushGradientsRequest, PushGradientsResponse>('PushGradients', { deadlineMs: CALL_DEADLINE_MS }, messages, (md, o, cb) =>
      this.client.pushGradients(md, o, cb));
  }

  /** Computes and pushes an honest share. */
  async train(a: StepAssignment): Promise<PushGradientsResponse> {
    return this.push(this.shareMessages(a, this.computeShare(a)));
  }

  /** The SubmitEval request of an EVAL assignment (evaluateBatch on each micro-batch). */
  evaluate(a: StepAssignment): SubmitEvalRequest {
    const { data, microBatches } = localShare(a);
    const classes = this.spec.model.numClasses;
    const out: SubmitEvalRequest = {
      workerId: this.id, globalStep: a.globalStep, epoch: a.epoch, sampleCount: 0, lossSum: 0, correctCount: 0,
      confusionMatrix: new Array<number>(classes * classes).fill(0), correctTop5: 0, microBatchIds: microBatches.map((m) => m.id),
    };
    for (const mb of microBatches) {
      const batch = toTensorBatch(makeBatch(data, mb.sampleIndices));
      try {
        const m = evaluateBatch(this.model(), batch);
        out.sampleCount += m.count;
        out.lossSum += m.lossSum;
        out.correctCount += m.correctTop1;
        out.correctTop5 += m.correctTop5;
        m.confusion.forEach((c, i) => (out.confusionMatrix[i] += c));
      } finally {
        tf.dispose([batch.x, batch.y]);
      }
    }
    return out;
  }

  async submitEval(req: SubmitEvalRequest): Promise<SubmitEvalResponse> {
    return unaryCall<SubmitEvalResponse>('SubmitEval', { deadlineMs: CALL_DEADLINE_MS }, (md, o, cb) => this.client.submitEval(req, md, o, cb));
  }

  /** An honest worker's loop until STOP: returns how many train and eval shares it completed. */
  async runUntilStop(maxWaitMs = 2000): Promise<{ train: number; eval: number }> {
    const done = { train: 0, eval: 0 };
    for (;;) {
      const { assignment: a } = await this.pull(maxWaitMs);
      if (a.kind === StepKind.STOP) return done;
      if (a.kind === StepKind.TRAIN) {
        await this.train(a);
        done.train++;
      } else if (a.kind === StepKind.EVAL) {
        await this.submitEval(this.evaluate(a));
        done.eval++;
      }
    }
  }

  async leave(drain = false): Promise<LeaveResponse> {
    return unaryCall<LeaveResponse>('Leave', { deadlineMs: CALL_DEADLINE_MS }, (md, o, cb) =>
      this.client.leave({ workerId: this.id, drain, reason: 'test', incarnation: this.incarnation }, md, o, cb));
  }

  /** Every variable of the replica by originalName. */
  weights(): Map<string, Float32Array> {
    const named = namedVariables(this.model());
    return new Map([...named.backbone, ...named.head].map((v) => [v.originalName, Float32Array.from(v.read().dataSync() as Float32Array)]));
  }

  /** Ends the Session stream as a worker whose process died would: the coordinator drops this incarnation. */
  endSession(): void {
    this.orders?.cancel();
    this.orders = undefined;
  }

  close(): void {
    this.stopHeartbeats();
    this.endSession();
    this.client.close();
    if (this.parts) disposeModelParts(this.parts);
    this.parts = null;
  }

  private model(): ModelParts {
    if (!this.parts) throw new Error('the fake worker has no model yet: call join()');
    return this.parts;
  }

  private write(tensors: Map<string, WireTensor>): void {
    const named = namedVariables(this.model());
    const byName = new Map([...named.backbone, ...named.head].map((v) => [v.originalName, v]));
    tf.tidy(() => {
      for (const [name, t] of tensors) {
        const v = byName.get(name);
        if (!v) throw new Error(`update names ${name}, which the model does not have`);
        v.write(tf.tensor(t.data as Float32Array, [...t.shape], 'float32'));
      }
    });
  }
}
