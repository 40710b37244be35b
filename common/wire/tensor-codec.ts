import { TensorChunk, TensorDtype, TensorSpec } from '../../proto';
import { MessageTooLargeError, NonFiniteValueError, TensorCodecError } from './errors';

/** Element types the wire carries, named as tfjs names them. */
export const WIRE_DTYPES = ['float32', 'int32', 'uint8'] as const;
export type WireDtype = (typeof WIRE_DTYPES)[number];
/** The typed array that holds each wire dtype. */
export type WireTypedArray = Float32Array | Int32Array | Uint8Array;

/** Name, element type and shape of one tensor: what a manifest lists and what chunks are checked against. */
export interface WireTensorSpec {
  readonly name: string;
  readonly dtype: WireDtype;
  readonly shape: readonly number[];
}

/** A named tensor as plain memory, free of tfjs so both roles and the tests can use it. */
export interface WireTensor extends WireTensorSpec {
  readonly data: WireTypedArray;
}

/** Largest message either side accepts unless configured otherwise (the grpc-js default). */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/**
 * Data bytes per chunk: a quarter of the default message limit. On bench/exchange.ts 256 KiB, 1 MiB
 * and 4 MB chunks are within the run-to-run noise; smaller ones pay per-message overhead.
 */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
/** Largest tensor a receiver allocates for unless told otherwise; guards against a corrupt total_bytes. */
export const DEFAULT_MAX_TENSOR_BYTES = 1024 * 1024 * 1024;

const ELEMENT_BYTES: Record<WireDtype, number> = { float32: 4, int32: 4, uint8: 1 };
const TO_PROTO: Record<WireDtype, TensorDtype> = {
  float32: TensorDtype.FLOAT32,
  int32: TensorDtype.INT32,
  uint8: TensorDtype.UINT8,
};

/** True where typed arrays are little-endian already, so their bytes go on the wire as they are. */
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Bytes per element of a wire dtype. */
export function elementBytes(dtype: WireDtype): number {
  return ELEMENT_BYTES[dtype];
}

/** Number of elements of a shape (1 for a scalar). */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Number of elements of tensors laid out back to back (a share's sums, an allreduce vector). */
export function totalElementCount(tensors: Iterable<{ readonly shape: readonly number[] }>): number {
  let n = 0;
  for (const t of tensors) n += elementCount(t.shape);
  return n;
}

/** The proto enum for a wire dtype. */
export function dtypeToProto(dtype: WireDtype): TensorDtype {
  return TO_PROTO[dtype];
}

/** The wire dtype of a proto enum value; `tensorName` names the tensor in the error for an unknown one. */
export function dtypeFromProto(dtype: TensorDtype, tensorName: string): WireDtype {
  switch (dtype) {
    case TensorDtype.FLOAT32:
      return 'float32';
    case TensorDtype.INT32:
      return 'int32';
    case TensorDtype.UINT8:
      return 'uint8';
    default:
      throw new TensorCodecError(tensorName, `tensor '${tensorName}': expected dtype float32, int32 or uint8, got enum value ${dtype}`);
  }
}

/** A manifest entry as the proto message. */
export function specToProto(spec: WireTensorSpec): TensorSpec {
  return { name: spec.name, dtype: dtypeToProto(spec.dtype), shape: [...spec.shape] };
}

/** A proto manifest entry as a wire spec (throws TensorCodecError on an unknown dtype). */
export function specFromProto(spec: TensorSpec): WireTensorSpec {
  return { name: spec.name, dtype: dtypeFromProto(spec.dtype, spec.name), shape: spec.shape };
}

/** The spec of a tensor, inferring the dtype from its typed array. */
export function specOf(tensor: { name: string; shape: readonly number[]; data: WireTypedArray }): WireTensorSpec {
  return { name: tensor.name, dtype: dtypeOfArray(tensor.data), shape: tensor.shape };
}

/** Reverses the byte order of every `elementSize`-byte element in place (big-endian hosts only). */
export function byteSwapInPlace(bytes: Uint8Array, elementSize: number): void {
  if (elementSize === 1) return;
  for (let i = 0; i < bytes.length; i += elementSize) {
    for (let a = i, b = i + elementSize - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

/** How a tensor is cut into chunks. */
export interface EncodeOptions {
  /**
   * No serialized message may exceed this; each chunk's data is cut to leave room for its envelope.
   * @default DEFAULT_MAX_MESSAGE_BYTES
   */
  maxMessageBytes?: number;
  /** Data bytes per chunk before the message limit applies. @default DEFAULT_CHUNK_BYTES */
  chunkBytes?: number;
}

/**
 * Upper bound of a chunk message's bytes besides its data: field tags, the name, shape varints,
 * two 64-bit varints and the oneof wrapper of the stream message that carries it.
 */
export function chunkEnvelopeBytes(name: string, rank: number): number {
  return Buffer.byteLength(name) + 5 * rank + 64;
}

/**
 * Cuts a tensor into chunks of raw little-endian bytes. On a little-endian host each chunk's data is
 * a view of the tensor's memory (no copy), so the tensor must not change until the chunks are sent.
 * Throws MessageTooLargeError when not even one element fits the message limit.
 */
export function* encodeTensor(tensor: WireTensor, options: EncodeOptions = {}): Generator<TensorChunk> {
  const spec = checkTensor(tensor);
  const size = ELEMENT_BYTES[spec.dtype];
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const budget = Math.min(options.chunkBytes ?? DEFAULT_CHUNK_BYTES, maxMessageBytes - chunkEnvelopeBytes(spec.name, spec.shape.length));
  const step = Math.floor(budget / size) * size;
  if (step < size) {
    throw new MessageTooLargeError(`a chunk of tensor '${spec.name}' (one ${spec.dtype} and its envelope)`,
      size + chunkEnvelopeBytes(spec.name, spec.shape.length), maxMessageBytes);
  }
  const arr = tensor.data;
  const totalBytes = arr.byteLength;
  const dtype = TO_PROTO[spec.dtype];
  const shape = [...spec.shape];
  let offset = 0;
  do {
    const len = Math.min(step, totalBytes - offset);
    let data = Buffer.from(arr.buffer, arr.byteOffset + offset, len);
    if (!HOST_IS_LITTLE_ENDIAN) {
      data = Buffer.from(data);
      byteSwapInPlace(data, size);
    }
    yield { name: spec.name, dtype, shape, offsetBytes: offset, totalBytes, data };
    offset += len;
  } while (offset < totalBytes);
}

/** Chunks of several tensors, one tensor after the other. */
export function* encodeTensors(tensors: Iterable<WireTensor>, options: EncodeOptions = {}): Generator<TensorChunk> {
  for (const t of tensors) yield* encodeTensor(t, options);
}

/**
 * Throws NonFiniteValueError naming the tensor and the first NaN/±Infinity; `indexBase` is added to
 * the reported index when `values` is a slice of the tensor.
 */
export function assertFinite(name: string, values: Float32Array, elementTotal = values.length, indexBase = 0): void {
  // v * 0 is ±0 for every finite v and NaN for NaN and ±Infinity, so four sums of it stay 0 exactly
  // when all values are finite: a branch-free pass (about 0.4 ns a value) and a slow search only on failure.
  // The last group of four reads the last value again where the length is no multiple of 4 (it adds its
  // v * 0 once more): one loop, so no load is left without type feedback when V8 optimizes it. A separate
  // loop for the remainder, first run after the optimization, deoptimized the function on every call.
  let a0 = 0;
  let a1 = 0;
  let a2 = 0;
  let a3 = 0;
  const n = values.length;
  const last = n - 1;
  for (let i = 0; i < n; i += 4) {
    a0 += values[i] * 0;
    a1 += values[Math.min(i + 1, last)] * 0;
    a2 += values[Math.min(i + 2, last)] * 0;
    a3 += values[Math.min(i + 3, last)] * 0;
  }
  if (a0 + a1 + a2 + a3 === 0) return;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v - v !== 0) throw new NonFiniteValueError(name, indexBase + i, v, elementTotal);
  }
}

function dtypeOfArray(data: WireTypedArray): WireDtype {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Int32Array) return 'int32';
  return 'uint8';
}

function checkTensor(tensor: WireTensor): WireTensorSpec {
  const actual = dtypeOfArray(tensor.data);
  if (actual !== tensor.dtype) {
    throw new TensorCodecError(tensor.name, `tensor '${tensor.name}': expected a ${tensor.dtype} array, got ${actual}`);
  }
  for (const d of tensor.shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new TensorCodecError(tensor.name, `tensor '${tensor.name}': expected non-negative integer dimensions, got shape [${tensor.shape.join(',')}]`);
    }
  }
  const n = elementCount(tensor.shape);
  if (n !== tensor.data.length) {
    throw new TensorCodecError(tensor.name, `tensor '${tensor.name}': shape [${tensor.shape.join(',')}] has ${n} elements, data has ${tensor.data.length}`);
  }
  return tensor;
}
