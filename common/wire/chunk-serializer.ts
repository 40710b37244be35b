import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import { ChannelCredentials, ClientOptions, makeGenericClientConstructor } from '@grpc/grpc-js';
import {
  CoordinatorClient,
  CoordinatorService,
  GetWeightsResponse,
  SessionOrder,
  PushGradientsRequest,
  TensorChunk,
} from '../../proto';

/*
 * The generated serializers copy a chunk's data five times on the way out (writer growth, the
 * length-prefix shift, finish(), Buffer.from, grpc-js framing) and twice on the way in. For the three
 * stream messages that carry TensorChunks this file writes the same bytes with one copy, and reads
 * `data` as a view of the received buffer. Every other message, and any stream message that is not a
 * chunk alone (a SessionOrder's chunk beside its `held_answer`, say), goes through the generated code. test/tensor-codec.test.ts checks byte equality with it.
 * Whatever this file encodes is written into one kept writer, and `finish()`'s bytes are sent as they are
 * (no Buffer.from copy): a StepAssignment with its samples' pixels no longer grows a writer from 128 bytes.
 */

/** Field number of `chunk` in the oneof of each chunk-carrying stream message. */
const CHUNK_FIELD = 2;
const LEN_DELIMITED = 2;
const EMPTY = Buffer.alloc(0);

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

function writeVarint(out: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    out[pos++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[pos++] = n;
  return pos;
}

/** A message as the generated `encode` writes it, into {@link writer}. */
interface Encoder<T> {
  encode(message: T, writer: BinaryWriter): { finish(): Uint8Array };
}

/**
 * Encoding messages above this leaves the writer behind rather than keeping its grown buffer (a weights
 * chunk or an evaluation share's pixels would otherwise stay allocated for the life of the process).
 */
const KEPT_WRITER_BYTES = 1 << 20;

/**
 * The writer every message of this module is encoded with. A fresh BinaryWriter starts at 128 bytes and
 * doubles (a copy and a zeroed allocation per doubling) for each message; this one keeps its buffer, so a
 * step's orders are written without growing it. `finish()` copies the bytes out and resets it.
 */
let writer = new BinaryWriter();

/** `message` encoded by `codec`, as a Buffer over the bytes `finish()` returned (no further copy). */
function encoded<T>(codec: Encoder<T>, message: T): Buffer {
  let bytes: Uint8Array;
  try {
    bytes = codec.encode(message, writer).finish();
  } catch (err) {
    writer = new BinaryWriter(); // left mid-message: its forks and position are the failed message's
    throw err;
  }
  if (bytes.byteLength > KEPT_WRITER_BYTES) writer = new BinaryWriter();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** `{ field: chunk }` encoded exactly as the generated encoder would, copying `data` once. */
export function encodeChunkMessage(field: number, chunk: TensorChunk): Buffer {
  const head = encoded(TensorChunk, { ...chunk, data: EMPTY });
  const n = chunk.data.length;
  const inner = head.length + (n > 0 ? 1 + varintSize(n) + n : 0);
  const tag = (field << 3) | LEN_DELIMITED;
  const out = Buffer.allocUnsafe(varintSize(tag) + varintSize(inner) + inner);
  let pos = writeVarint(out, 0, tag);
  pos = writeVarint(out, pos, inner);
  out.set(head, pos);
  pos += head.length;
  if (n > 0) {
    out[pos++] = (6 << 3) | LEN_DELIMITED;
    pos = writeVarint(out, pos, n);
    out.set(chunk.data, pos);
  }
  return out;
}

/**
 * The TensorChunk in a message that holds nothing but `{ field: chunk }`, with `data` a view of
 * `buf`; undefined for any other message (the caller falls back to the generated decoder).
 */
export function decodeChunkMessage(field: number, buf: Buffer): TensorChunk | undefined {
  const reader = new BinaryReader(buf);
  if (reader.len === 0 || reader.uint32() !== ((field << 3) | LEN_DELIMITED)) return undefined;
  const end = reader.uint32() + reader.pos;
  if (end !== buf.length) return undefined;
  const chunk: TensorChunk = { name: '', dtype: 0, shape: [], offsetBytes: 0, totalBytes: 0, data: EMPTY };
  while (reader.pos < end) {
    const tag = reader.uint32();
    switch (tag) {
      case 10:
        chunk.name = reader.string();
        break;
      case 16:
        chunk.dtype = reader.int32();
        break;
      case 24:
        chunk.shape.push(reader.uint32());
        break;
      case 26: {
        const end2 = reader.uint32() + reader.pos;
        while (reader.pos < end2) chunk.shape.push(reader.uint32());
        break;
      }
      case 32:
        chunk.offsetBytes = safeNumber(reader.uint64());
        break;
      case 40:
        chunk.totalBytes = safeNumber(reader.uint64());
        break;
      case 50: {
        const view = reader.bytes();
        chunk.data = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
        break;
      }
      default:
        if ((tag & 7) === 4 || tag === 0) return undefined;
        reader.skip(tag & 7);
    }
  }
  return chunk;
}

function safeNumber(v: bigint | string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new RangeError(`uint64 ${v} does not fit a JavaScript number`);
  return n;
}

interface OneofCodec<T> extends Encoder<T> {
  decode(input: Uint8Array): T;
}

/** True when `value` is a chunk and nothing else (every field beside the oneof unset). */
function chunkOnly(value: object): TensorChunk | undefined {
  const { payload, ...rest } = value as { payload?: { $case: string; chunk?: TensorChunk } };
  if (payload?.$case !== 'chunk' || !payload.chunk) return undefined;
  return Object.values(rest).every((v) => v === undefined) ? payload.chunk : undefined;
}

function serializerFor<T extends { payload?: { $case: string } }>(codec: OneofCodec<T>): (value: T) => Buffer {
  return (value) => {
    const chunk = chunkOnly(value);
    return chunk ? encodeChunkMessage(CHUNK_FIELD, chunk) : encoded(codec, value);
  };
}

function deserializerFor<T>(codec: OneofCodec<T>): (buf: Buffer) => T {
  // Every field at its default, as the generated decoder leaves the fields a chunk message lacks.
  const unset = codec.decode(new Uint8Array(0));
  return (buf) => {
    const chunk = decodeChunkMessage(CHUNK_FIELD, buf);
    return chunk ? ({ ...unset, payload: { $case: 'chunk', chunk } } as T) : codec.decode(buf);
  };
}

/**
 * The Coordinator service definition to register and to build clients from: the generated one with
 * one-copy (de)serializers for PushGradients, Session and GetWeights. Wire-compatible with it.
 */
export const COORDINATOR_SERVICE = {
  ...CoordinatorService,
  pushGradients: {
    ...CoordinatorService.pushGradients,
    requestSerialize: serializerFor(PushGradientsRequest),
    requestDeserialize: deserializerFor(PushGradientsRequest),
  },
  session: {
    ...CoordinatorService.session,
    responseSerialize: serializerFor(SessionOrder),
    responseDeserialize: deserializerFor(SessionOrder),
  },
  getWeights: {
    ...CoordinatorService.getWeights,
    responseSerialize: serializerFor(GetWeightsResponse),
    responseDeserialize: deserializerFor(GetWeightsResponse),
  },
} satisfies typeof CoordinatorService;

/** Client class for COORDINATOR_SERVICE; build instances with `createCoordinatorClient`. */
export const FastCoordinatorClient = makeGenericClientConstructor(COORDINATOR_SERVICE, 'shardwise.v1.Coordinator') as unknown as {
  new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>): CoordinatorClient;
};
