import { MessageTooLargeError, TensorCodecError, WireError } from './errors';
import { WIRE_DTYPES, WireDtype, WireTensor, WireTensorSpec, elementBytes, elementCount, specOf } from './tensor-codec';

/**
 * The tensor channel's frame: one frame carries one set of tensors.
 *
 *   u32 LE magic 'SWT1' | u32 LE header bytes | JSON header | tensor 0 bytes | tensor 1 bytes | …
 *
 * The JSON header lists every tensor (name, dtype, shape, byte length) before any data, so a receiver
 * checks the whole set against its manifest and size limit before it reads (or allocates for) a byte of
 * payload. Tensor bytes are raw little-endian elements, back to back in header order.
 */
export const FRAME_MAGIC = 0x31545753; // 'SWT1' read as a little-endian u32
/** Bytes before the JSON header: magic and header length. */
export const FRAME_PREFIX_BYTES = 8;
/** Largest JSON header a receiver reads unless told otherwise; a bigger one is garbage or an attack. */
export const DEFAULT_MAX_FRAME_HEADER_BYTES = 1024 * 1024;

/** Small JSON-safe values sent beside the tensors (step, sample count), so no second message is needed. */
export type FrameMeta = Readonly<Record<string, string | number | boolean>>;

/** One tensor as the header lists it. */
export interface FrameTensorEntry extends WireTensorSpec {
  readonly byteLength: number;
}

/** The parsed header of a frame. */
export interface FrameHeader {
  readonly meta: FrameMeta;
  readonly tensors: readonly FrameTensorEntry[];
  /** Sum of the tensors' byte lengths: the payload that follows the header. */
  readonly payloadBytes: number;
}

/** What a receiver accepts; see `TensorChannelOptions` and `ReceiveOptions` for the defaults. */
export interface FrameLimits {
  readonly expected?: ReadonlyMap<string, WireTensorSpec>;
  readonly maxTotalBytes: number;
}

/**
 * The prefix and JSON header of a frame for `tensors` (the payload is written from their own memory).
 * Throws TensorCodecError for a tensor whose data does not fit its shape or dtype, or a duplicate name.
 */
export function encodeFrameHeader(tensors: readonly WireTensor[], meta: FrameMeta = {}): Buffer {
  const seen = new Set<string>();
  const entries = tensors.map((t): FrameTensorEntry => {
    const actual = specOf(t).dtype;
    if (actual !== t.dtype) {
      throw new TensorCodecError(t.name, `tensor '${t.name}': expected ${t.dtype} data, got ${t.data.constructor.name}`);
    }
    const n = elementCount(t.shape);
    if (n !== t.data.length) {
      throw new TensorCodecError(t.name, `tensor '${t.name}': shape [${t.shape.join(',')}] has ${n} elements, data has ${t.data.length}`);
    }
    if (seen.has(t.name)) throw new TensorCodecError(t.name, `tensor '${t.name}' appears twice; expected unique names`);
    seen.add(t.name);
    return { name: t.name, dtype: t.dtype, shape: [...t.shape], byteLength: t.data.byteLength };
  });
  const json = Buffer.from(JSON.stringify({ meta, tensors: entries }), 'utf8');
  const out = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + json.length);
  out.writeUInt32LE(FRAME_MAGIC, 0);
  out.writeUInt32LE(json.length, 4);
  json.copy(out, FRAME_PREFIX_BYTES);
  return out;
}

/** Reads the prefix; returns the JSON header's length or throws on a bad magic or an oversize header. */
export function parseFramePrefix(prefix: Buffer, maxHeaderBytes: number): number {
  const magic = prefix.readUInt32LE(0);
  if (magic !== FRAME_MAGIC) {
    throw new WireError(`tensor channel: expected frame magic 0x${FRAME_MAGIC.toString(16)}, got 0x${magic.toString(16)} ` +
      '(the peer is not a tensor channel, or the stream lost its place)');
  }
  const headerBytes = prefix.readUInt32LE(4);
  if (headerBytes > maxHeaderBytes) throw new MessageTooLargeError('tensor channel frame header', headerBytes, maxHeaderBytes);
  return headerBytes;
}

/**
 * Parses and validates a JSON header: well-formed entries, byte lengths that match shapes, the running
 * total under `maxTotalBytes` (MessageTooLargeError naming the tensor that crosses it), and, given a
 * manifest, exactly its names with its dtypes and shapes (TensorCodecError naming the tensor).
 */
export function parseFrameHeader(json: Buffer, limits: FrameLimits): FrameHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw new WireError(`tensor channel: expected a JSON frame header, got ${json.length} bytes that do not parse`, { cause: err });
  }
  const obj = raw as { meta?: unknown; tensors?: unknown };
  if (typeof raw !== 'object' || raw === null || !Array.isArray(obj.tensors) || typeof obj.meta !== 'object' || obj.meta === null) {
    throw new WireError('tensor channel: expected a frame header {meta: {...}, tensors: [...]}, got something else');
  }
  const seen = new Set<string>();
  const tensors: FrameTensorEntry[] = [];
  let total = 0;
  for (const e of obj.tensors as unknown[]) {
    const entry = checkEntry(e);
    const name = entry.name;
    if (seen.has(name)) throw new TensorCodecError(name, `frame lists tensor '${name}' twice; expected unique names`);
    seen.add(name);
    total += entry.byteLength;
    if (total > limits.maxTotalBytes) {
      throw new MessageTooLargeError(`the frame's tensors up to and including '${name}'`, total, limits.maxTotalBytes);
    }
    const want = limits.expected?.get(name);
    if (limits.expected && !want) {
      const names = [...limits.expected.keys()];
      throw new TensorCodecError(name, `frame has tensor '${name}', which the manifest does not list (expected one of ` +
        `'${names.slice(0, 5).join("', '")}'${names.length > 5 ? `, … ${names.length} names` : ''})`);
    }
    if (want && (want.dtype !== entry.dtype || !sameShape(want.shape, entry.shape))) {
      throw new TensorCodecError(name, `tensor '${name}': expected shape [${want.shape.join(',')}] ${want.dtype}, ` +
        `frame has shape [${entry.shape.join(',')}] ${entry.dtype}`);
    }
    tensors.push(entry);
  }
  if (limits.expected) {
    const missing = [...limits.expected.keys()].filter((n) => !seen.has(n));
    if (missing.length > 0) {
      throw new TensorCodecError(missing[0], `expected ${limits.expected.size} tensors, the frame lacks ${missing.length}: ` +
        `'${missing.slice(0, 5).join("', '")}'${missing.length > 5 ? ', …' : ''}`);
    }
  }
  return { meta: obj.meta as FrameMeta, tensors, payloadBytes: total };
}

function checkEntry(e: unknown): FrameTensorEntry {
  const t = e as Partial<FrameTensorEntry>;
  const name = typeof t?.name === 'string' ? t.name : '?';
  if (typeof e !== 'object' || e === null || typeof t.name !== 'string') {
    throw new WireError('tensor channel: expected every header entry to have a string name, got one without');
  }
  if (!WIRE_DTYPES.includes(t.dtype as WireDtype)) {
    throw new TensorCodecError(name, `tensor '${name}': expected dtype ${WIRE_DTYPES.join(', ')}, got ${String(t.dtype)}`);
  }
  const shape = t.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new TensorCodecError(name, `tensor '${name}': expected non-negative integer dimensions, got ${JSON.stringify(shape)}`);
  }
  const bytes = elementCount(shape) * elementBytes(t.dtype as WireDtype);
  if (t.byteLength !== bytes) {
    throw new TensorCodecError(name, `tensor '${name}': shape [${shape.join(',')}] ${String(t.dtype)} is ${bytes} bytes, ` +
      `header says ${String(t.byteLength)}`);
  }
  return { name, dtype: t.dtype as WireDtype, shape, byteLength: bytes };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
