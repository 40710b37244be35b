/**
 * The wire layer: tensors as chunk streams, the Coordinator service with fast chunk serializers,
 * gRPC server/client helpers with deadlines, and the one mapping between domain errors and gRPC
 * status codes. Coordinator and worker code use this and never the generated types' codecs directly.
 */
export {
  WireError,
  TensorCodecError,
  NonFiniteValueError,
  MessageTooLargeError,
  IncompatiblePeerError,
  StaleRequestError,
  UnknownWorkerError,
  NotReadyError,
  WorkerIdInUseError,
  UnauthenticatedError,
  PermissionDeniedError,
  RpcError,
} from './errors';
export { MAX_WORKER_ID_LENGTH } from './worker-id';
export {
  WIRE_DTYPES,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_CHUNK_BYTES,
  DEFAULT_MAX_TENSOR_BYTES,
  HOST_IS_LITTLE_ENDIAN,
  elementBytes,
  elementCount,
  totalElementCount,
  dtypeToProto,
  dtypeFromProto,
  specToProto,
  specFromProto,
  specOf,
  chunkEnvelopeBytes,
  encodeTensor,
  encodeTensors,
  assertFinite,
} from './tensor-codec';
export type { WireDtype, WireTypedArray, WireTensorSpec, WireTensor, EncodeOptions } from './tensor-codec';
export { TensorAssembler } from './tensor-assembler';
export type { AssembleOptions } from './tensor-assembler';
export { COORDINATOR_SERVICE } from './chunk-serializer';
export {
  ERROR_NAME_TRAILER,
  RPC_RETRY,
  statusCodeFor,
  statusName,
  toServiceError,
  fromServiceError,
  isRetryableCode,
  withRpcRetry,
} from './grpc-status';
export type { RpcRetryOptions } from './grpc-status';
export { DEFAULT_FLOW_CONTROL_WINDOW_BYTES, startGrpcServer, unaryHandler, clientStreamHandler, serverStreamHandler } from './grpc-server';
export type { GrpcServerOptions, RunningGrpcServer, ServiceBinding } from './grpc-server';
export { createCoordinatorClient, deadlineAfter, unaryCall, serverStreamCall, clientStreamCall } from './grpc-client';
export type { GrpcClientOptions, RpcCallOptions } from './grpc-client';
export { writeAll, StreamClosedError } from './stream-io';
export { duplexStreamHandler, openDuplexCall } from './duplex-call';
export type { DuplexCall } from './duplex-call';
export type { ReadyState } from './session-ready';
export { ChannelReadBridge, TensorChannel, connectTensorChannel, startTensorChannelServer } from './tensor-channel';
export type { TensorChannelOptions, ReceiveOptions, ReceivedFrame, TensorChannelServer } from './tensor-channel';
export { FRAME_MAGIC, FRAME_PREFIX_BYTES, DEFAULT_MAX_FRAME_HEADER_BYTES, encodeFrameHeader } from './tensor-channel-frame';
export type { FrameMeta } from './tensor-channel-frame';
/** gRPC status codes, re-exported so callers compare `err.code === GrpcStatus.UNAVAILABLE` without grpc-js. */
export { status as GrpcStatus } from '@grpc/grpc-js';
