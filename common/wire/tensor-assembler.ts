import type { TensorChunk } from '../../proto';
import { MessageTooLargeError, TensorCodecError } from './errors';
import {
  DEFAULT_MAX_TENSOR_BYTES,
  HOST_IS_LITTLE_ENDIAN,
  WireDtype,
  WireTensor,
  WireTensorSpec,
  WireTypedArray,
  assertFinite,
  byteSwapInPlace,
  dtypeFromProto,
  elementBytes,
  elementCount,
} from './tensor-codec';

/** What a receiver checks while it reassembles chunks. */
export interface AssembleOptions {
  /**
   * The manifest sent ahead of the chunks (or the receiver's own model): names not listed are
   * rejected, shapes and dtypes must match, and `finish()` requires every listed tensor.
   * Undefined accepts any name and takes the spec from the first chunk of each tensor.
   */
  expected?: readonly WireTensorSpec[];
  /** Reject NaN and ±Infinity in float32 tensors as each chunk arrives. @default true */
  checkFinite?: boolean;
  /** Reject a chunk whose data alone exceeds this many bytes. @default no limit (grpc-js enforces its own) */
  maxMessageBytes?: number;
  /** Refuse to allocate for a tensor larger than this (a corrupt total_bytes). @default DEFAULT_MAX_TENSOR_BYTES */
  maxTensorBytes?: number;
  /**
   * Memory to assemble a tensor into, e.g. the same buffers every step: fresh multi-megabyte buffers
   * cost page faults and GC on each step. Return an array of the spec's dtype and element count, or
   * undefined to let the assembler allocate. Its contents are overwritten even if the stream then fails.
   */
  into?: (spec: WireTensorSpec) => WireTypedArray | undefined;
}

/** One tensor being filled: its buffer and the byte ranges received so far, sorted and merged. */
interface Pending {
  spec: WireTensorSpec;
  totalBytes: number;
  bytes: Uint8Array;
  receivedBytes: number;
  chunks: number;
  ranges: Array<[number, number]>;
}

/**
 * Reassembles tensors from chunks in any order, validating each chunk as it arrives so a bad stream is
 * refused at the first bad chunk rather than after the last. Copies each chunk once, into a buffer
 * allocated for its tensor (aligned, so the result is a typed-array view, not another copy).
 */
export class TensorAssembler {
  private readonly expected?: Map<string, WireTensorSpec>;
  private readonly checkFinite: boolean;
  private readonly maxMessageBytes: number;
  private readonly maxTensorBytes: number;
  private readonly into?: (spec: WireTensorSpec) => WireTypedArray | undefined;
  private readonly pending = new Map<string, Pending>();

  constructor(options: AssembleOptions = {}) {
    if (options.expected) {
      this.expected = new Map();
      for (const spec of options.expected) {
        if (this.expected.has(spec.name)) {
          throw new TensorCodecError(spec.name, `manifest lists tensor '${spec.name}' twice; expected unique names`);
        }
        this.expected.set(spec.name, spec);
      }
    }
    this.checkFinite = options.checkFinite ?? true;
    this.maxMessageBytes = options.maxMessageBytes ?? Infinity;
    this.maxTensorBytes = options.maxTensorBytes ?? DEFAULT_MAX_TENSOR_BYTES;
    this.into = options.into;
  }

  /** Adds one chunk; throws TensorCodecError / NonFiniteValueError / MessageTooLargeError on a bad one. */
  add(chunk: TensorChunk): void {
    const name = chunk.name;
    if (chunk.data.length > this.maxMessageBytes) {
      throw new MessageTooLargeError(`chunk of tensor '${name}'`, chunk.data.length, this.maxMessageBytes);
    }
    const p = this.pending.get(name) ?? this.start(chunk);
    this.checkMatches(p, chunk);
    const size = elementBytes(p.spec.dtype);
    const start = chunk.offsetBytes;
    const end = start + chunk.data.length;
    if (start % size !== 0 || chunk.data.length % size !== 0) {
      throw new TensorCodecError(name, `tensor '${name}': expected slices aligned to ${size}-byte elements, got [${start}, ${end})`);
    }
    if (end > p.totalBytes) {
      throw new TensorCodecError(name, `tensor '${name}': slice [${start}, ${end}) reaches past its ${p.totalBytes} bytes`);
    }
    insertRange(p, start, end);
    p.bytes.set(chunk.data, start);
    p.receivedBytes += end - start;
    p.chunks++;
    if (!HOST_IS_LITTLE_ENDIAN) byteSwapInPlace(p.bytes.subarray(start, end), size);
    if (this.checkFinite && p.spec.dtype === 'float32' && end > start) {
      const view = new Float32Array(p.bytes.buffer, p.bytes.byteOffset + start, (end - start) / 4);
      assertFinite(name, view, p.totalBytes / 4, start / 4);
    }
  }

  /** True once every expected tensor (or, without a manifest, every started one) is complete. */
  get complete(): boolean {
    if (this.expected && this.pending.size !== this.expected.size) return false;
    for (const p of this.pending.values()) if (p.receivedBytes !== p.totalBytes) return false;
    return true;
  }

  /** The reassembled tensors, in manifest (else arrival) order; throws naming the first missing piece. */
  finish(): Map<string, WireTensor> {
    if (this.expected) {
      const missing = [...this.expected.keys()].filter((n) => !this.pending.has(n));
      if (missing.length > 0) {
        throw new TensorCodecError(missing[0], `expected ${this.expected.size} tensors, no chunk arrived for ${missing.length}: ` +
          `'${missing.slice(0, 5).join("', '")}'${missing.length > 5 ? ', …' : ''}`);
      }
    }
    const out = new Map<string, WireTensor>();
    const order = this.expected ? [...this.expected.keys()] : [...this.pending.keys()];
    for (const name of order) {
      const p = this.pending.get(name) as Pending;
      if (p.receivedBytes !== p.totalBytes) {
        const gap = p.ranges.length === 0 || p.ranges[0][0] > 0 ? 0 : p.ranges[0][1];
        throw new TensorCodecError(name, `tensor '${name}' is incomplete: ${p.chunks} chunks cover ${p.receivedBytes} of ` +
          `${p.totalBytes} bytes, first gap at byte ${gap}`);
      }
      out.set(name, { ...p.spec, data: typedView(p.spec.dtype, p.bytes) });
    }
    return out;
  }

  private start(chunk: TensorChunk): Pending {
    const name = chunk.name;
    let spec: WireTensorSpec;
    if (this.expected) {
      const known = this.expected.get(name);
      if (!known) {
        const names = [...this.expected.keys()];
        throw new TensorCodecError(name, `chunk for tensor '${name}', which the manifest does not list (expected one of ` +
          `'${names.slice(0, 5).join("', '")}'${names.length > 5 ? `, … ${names.length} names` : ''})`);
      }
      spec = known;
    } else {
      spec = { name, dtype: dtypeFromProto(chunk.dtype, name), shape: [...chunk.shape] };
    }
    const totalBytes = elementCount(spec.shape) * elementBytes(spec.dtype);
    if (totalBytes > this.maxTensorBytes) {
      throw new MessageTooLargeError(`tensor '${name}'`, totalBytes, this.maxTensorBytes);
    }
    const bytes = this.destination(spec, totalBytes);
    const p: Pending = { spec, totalBytes, bytes, receivedBytes: 0, chunks: 0, ranges: [] };
    this.pending.set(name, p);
    return p;
  }

  private destination(spec: WireTensorSpec, totalBytes: number): Uint8Array {
    const given = this.into?.(spec);
    if (!given) {
      // Not zero-filled: finish() hands the bytes out only once every byte has been written.
      return Buffer.allocUnsafeSlow(totalBytes);
    }
    const n = elementCount(spec.shape);
    if (typedView(spec.dtype, new Uint8Array(0)).constructor !== given.constructor || given.length !== n) {
      throw new TensorCodecError(spec.name, `tensor '${spec.name}': the buffer to assemble into must be a ${spec.dtype} array of ` +
        `${n} elements, got ${given.constructor.name} of ${given.length}`);
    }
    return new Uint8Array(given.buffer, given.byteOffset, given.byteLength);
  }

  private checkMatches(p: Pending, chunk: TensorChunk): void {
    const name = chunk.name;
    const dtype = dtypeFromProto(chunk.dtype, name);
    if (dtype !== p.spec.dtype || !sameShape(chunk.shape, p.spec.shape)) {
      throw new TensorCodecError(name, `tensor '${name}': expected shape [${p.spec.shape.join(',')}] ${p.spec.dtype}, ` +
        `chunk has shape [${chunk.shape.join(',')}] ${dtype}`);
    }
    if (chunk.totalBytes !== p.totalBytes) {
      throw new TensorCodecError(name, `tensor '${name}': shape [${p.spec.shape.join(',')}] ${p.spec.dtype} is ${p.totalBytes} bytes, ` +
        `chunk says total_bytes ${chunk.totalBytes}`);
    }
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Records [start, end) as received, merging neighbours; throws if it overlaps what is there. */
function insertRange(p: Pending, start: number, end: number): void {
  const r = p.ranges;
  // Chunks usually arrive in order, so look from the end.
  let i = r.length;
  while (i > 0 && r[i - 1][0] >= end) i--;
  const prev = i > 0 ? r[i - 1] : undefined;
  if (prev && prev[1] > start) {
    throw new TensorCodecError(p.spec.name, `tensor '${p.spec.name}': slice [${start}, ${end}) overlaps bytes [${prev[0]}, ${prev[1]}) ` +
      'already received');
  }
  if (end === start) return;
  const next = i < r.length ? r[i] : undefined;
  if (prev && prev[1] === start) {
    prev[1] = end;
    if (next && next[0] === end) {
      prev[1] = next[1];
      r.splice(i, 1);
    }
  } else if (next && next[0] === end) {
    next[0] = start;
  } else {
    r.splice(i, 0, [start, end]);
  }
}

function typedView(dtype: WireDtype, bytes: Uint8Array): WireTypedArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    case 'int32':
      return new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    case 'uint8':
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
}
