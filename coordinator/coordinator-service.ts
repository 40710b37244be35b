import type { ServerWritableStream } from '@grpc/grpc-js';
import {
  clientStreamHandler,
  encodeTensors,
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
  type PullStepRequest,
  type PullStepResponse,
  type PushGradientsRequest,
  type PushGradientsResponse,
  type RegisterRequest,
  type RegisterResponse,
  StepKind,
  type StepAssignment,
  UpdateKind as ProtoUpdateKind,
  type WorkerCapabilities,
} from '../proto';
import { type Assignment, AssignmentKind, pullAssignment } from './assignment-desk';
import { InvalidResultError } from './errors';
import type { JobContext } from './job-context';
import { type GradientPush, receiveEval, receiveGradients, type WireChunk } from './result-intake';
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
      members: a.reduce.members.map((m) => ({ id: m.id, address: m.address, observer: m.role === 'observer', parts: [...(m.parts ?? [])] })),
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

async function* pullMessages(job: JobContext, req: PullStepRequest, call: ServerWritableStream<PullStepRequest, PullStepResponse>) {
  const cancelled = new AbortController();
  const onCancel = (): void => cancelled.abort();
  call.on('cancelled', onCancel);
  try {
    const a = await pullAssignment(
      job,
      { workerId: req.workerId, weightsVersion: req.weightsVersion, maxWaitMs: req.maxWaitMs },
      cancelled.signal,
    );
    yield { payload: { $case: 'assignment' as const, assignment: toStepAssignment(a) } };
    yield* chunkMessages(a.update.tensors, a.maxMessageBytes, (chunk) => ({ payload: { $case: 'chunk' as const, chunk } }));
  } finally {
    call.off('cancelled', onCancel);
  }
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

async function receivePush(job: JobContext, messages: AsyncIterable<PushGradientsRequest>): Promise<PushGradientsResponse> {
  const it = messages[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done || first.value.payload?.$case !== 'header') {
    throw new InvalidResultError('', 'header', 'PushGradients: expected a GradientHeader as the first message');
  }
  const header = first.value.payload.header;
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

/** The Coordinator service's handlers for `job`, to register with COORDINATOR_SERVICE. */
export function coordinatorService(job: JobContext): CoordinatorServer {
  return {
    register: unaryHandler(async (req: RegisterRequest): Promise<RegisterResponse> =>
      registerWorker(job, capabilitiesOf(req.capabilities))),
    getConfig: unaryHandler(async (req): Promise<ConfigState> => configFor(job, req.workerId)),
    heartbeat: unaryHandler(async (req) => heartbeat(job, req.workerId)),
    leave: unaryHandler(async (req) => leaveJob(job, req.workerId, req.drain, req.reason)),
    getWeights: serverStreamHandler((req) => weightsMessages(job, req)),
    pullStep: serverStreamHandler((req, call) => pullMessages(job, req, call)),
    pushGradients: clientStreamHandler((messages) => receivePush(job, messages)),
    submitEval: unaryHandler(async (req) =>
      receiveEval(job, {
        workerId: req.workerId,
        globalStep: req.globalStep,
        epoch: req.epoch,
        sampleCount: req.sampleCount,
        lossSum: req.lossSum,
        correctTop1: req.correctCount,
        correctTop5: req.correctTop5,
        confusion: Uint32Array.from(req.confusionMatrix),
        microBatchIds: [...req.microBatchIds],
      })),
    scale: unaryHandler(async (req) => scaleJob(job, req.desiredWorkers)),
  };
}
