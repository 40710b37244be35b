import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EpochLedger, type LedgerState } from './epoch-ledger';
import { CheckpointError, CorruptCheckpointError } from './errors';

/** Bumped when the on-disk layout changes incompatibly; readers reject other versions. */
export const CHECKPOINT_FORMAT_VERSION = 1;
/** Position, versions and opaque scheduler/optimizer/ledger state of a checkpoint. */
export const STATE_FILE = 'state.json';
/** Names, shapes and byte ranges of the tensors, and the SHA-256 of {@link TENSORS_FILE}. */
export const MANIFEST_FILE = 'tensors.json';
/** Raw little-endian float32 values of every tensor, back to back. */
export const TENSORS_FILE = 'tensors.bin';
const FLOAT32_BYTES = 4;

/** Any value JSON can carry; used for state the store does not interpret. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * Everything but the tensors. `(epoch, step)` is the position to resume at: the next step to run, so a
 * checkpoint taken after the last step of epoch 2 says epoch 3, step 0. It must agree with the ledger's
 * own position (checked on write and read): that is what makes the exactly-once report survive a resume.
 */
export interface CheckpointState {
  epoch: number;
  step: number;
  /** Steps completed since the start of training; names the checkpoint folder. */
  globalStep: number;
  configVersion: number;
  weightsVersion: number;
  /** Learning-rate schedule and plateau state, opaque to the store. */
  schedule: JsonValue;
  /** Optimizer scalars (per-variable step counts and the like), opaque; its arrays go in the tensors. */
  optimizer?: JsonValue;
  ledger: LedgerState;
  /** `jobSpecHash(spec)` of the job that wrote it, so a resume under a changed spec can be refused. */
  jobSpecHash: string;
}

/** A named float32 array: a weight or an optimizer slot. */
export interface NamedTensor {
  name: string;
  shape: readonly number[];
  values: Float32Array;
}

/** A checkpoint read back and verified. */
export interface Checkpoint {
  /** The checkpoint folder. */
  path: string;
  state: CheckpointState;
  /** In the order they were written. */
  tensors: NamedTensor[];
}

/** Where each tensor lies in `tensors.bin` (raw little-endian float32, back to back). */
export interface TensorManifest {
  formatVersion: number;
  /** Size of `tensors.bin`. */
  byteLength: number;
  /** Hex SHA-256 of `tensors.bin`: catches a file that is complete in size but damaged. */
  sha256: string;
  tensors: { name: string; shape: number[]; dtype: 'float32'; byteOffset: number; byteLength: number }[];
}

/**
 * A stable hash of a job spec (keys sorted at every level, so field order in the file does not matter).
 */
export function jobSpecHash(spec: unknown): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The folder name of the checkpoint at `globalStep`; zero-padded so names sort like steps. */
export function checkpointFolderName(globalStep: number): string {
  return `step-${String(globalStep).padStart(10, '0')}`;
}

/** Raw little-endian bytes of `values` (a view, not a copy, on little-endian machines). */
export function littleEndianBytes(values: Float32Array): Buffer {
  if (os.endianness() === 'LE') return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const out = Buffer.alloc(values.byteLength);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i], i * FLOAT32_BYTES);
  return out;
}

function readFloat32LE(bytes: Buffer, byteOffset: number, count: number): Float32Array {
  const out = new Float32Array(count);
  if (os.endianness() === 'LE') {
    new Uint8Array(out.buffer).set(bytes.subarray(byteOffset, byteOffset + count * FLOAT32_BYTES));
  } else {
    for (let i = 0; i < count; i++) out[i] = bytes.readFloatLE(byteOffset + i * FLOAT32_BYTES);
  }
  return out;
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

function isShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((d) => Number.isInteger(d) && d >= 0);
}

const POSITION_FIELDS = ['epoch', 'step', 'globalStep', 'configVersion', 'weightsVersion'] as const;

/**
 * Values JSON.stringify would silently change: Infinity/NaN become null, a Map becomes {}, a typed array
 * an object of indices. Caught on write, since after a resume they would quietly alter the schedule.
 */
function nonJsonProblems(value: unknown, where: string, out: string[]): void {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) out.push(`${where}: expected a finite number (JSON has no ${value}), got ${value}`);
  } else if (Array.isArray(value)) {
    value.forEach((v, k) => nonJsonProblems(v, `${where}[${k}]`, out));
  } else if (value !== null && typeof value === 'object') {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const kind = value.constructor?.name ?? 'non-plain object';
      out.push(`${where}: expected plain JSON, got a ${kind} (arrays go in tensors)`);
      return;
    }
    for (const [k, v] of Object.entries(value)) nonJsonProblems(v, `${where}.${k}`, out);
  } else if (typeof value === 'function' || typeof value === 'bigint' || typeof value === 'symbol') {
    out.push(`${where}: expected plain JSON, got a ${typeof value}`);
  }
}

/** Problems with a state, or an empty list. Shared by write (bad input) and read (corrupt file). */
export function stateProblems(state: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const f of POSITION_FIELDS) {
    const v = state[f];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      problems.push(`expected ${f} to be an integer >= 0, got ${JSON.stringify(v)}`);
    }
  }
  if (typeof state.jobSpecHash !== 'string') problems.push('expected jobSpecHash to be a string');
  if (!('schedule' in state)) problems.push('expected a schedule field');
  nonJsonProblems(state.schedule, 'schedule', problems);
  nonJsonProblems(state.optimizer, 'optimizer', problems);
  try {
    const ledger = EpochLedger.fromJSON(state.ledger as LedgerState);
    if (ledger.epoch !== state.epoch || ledger.openStep !== state.step) {
      problems.push(
        `expected the ledger at epoch ${state.epoch} step ${state.step}, ` +
          `found it at epoch ${ledger.epoch} step ${ledger.openStep}`,
      );
    }
  } catch (err) {
    problems.push(err instanceof Error ? err.message : String(err));
  }
  return problems;
}

async function readPart(folder: string, file: string): Promise<Buffer> {
  try {
    return await fs.readFile(path.join(folder, file));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CorruptCheckpointError(folder, file, 'file is missing', { cause: err });
    if (code === 'EISDIR') {
      throw new CorruptCheckpointError(folder, file, 'expected a file, found a folder', { cause: err });
    }
    throw new CheckpointError(folder, `cannot read ${file}`, { cause: err });
  }
}

function parseJson(folder: string, file: string, bytes: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new CorruptCheckpointError(folder, file, `invalid JSON (${bytes.length} bytes): ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new CorruptCheckpointError(folder, file, 'expected a JSON object');
  }
  const version = (value as Record<string, unknown>).formatVersion;
  if (version !== CHECKPOINT_FORMAT_VERSION) {
    throw new CorruptCheckpointError(
      folder,
      file,
      `expected formatVersion ${CHECKPOINT_FORMAT_VERSION}, got ${JSON.stringify(version)}`,
    );
  }
  return value as Record<string, unknown>;
}

/**
 * Reads and verifies one checkpoint folder: both JSON files parse and hold what they must, `tensors.bin`
 * has the size and SHA-256 the manifest records, and every tensor fits its shape.
 * @throws CorruptCheckpointError naming the bad file; CheckpointError for other I/O failures.
 */
export async function readCheckpoint(folder: string): Promise<Checkpoint> {
  const stateJson = parseJson(folder, STATE_FILE, await readPart(folder, STATE_FILE));
  const problems = stateProblems(stateJson);
  if (problems.length > 0) throw new CorruptCheckpointError(folder, STATE_FILE, problems.join('; '));
  const manifest = parseJson(folder, MANIFEST_FILE, await readPart(folder, MANIFEST_FILE)) as unknown as TensorManifest;
  const wellFormed =
    Number.isInteger(manifest.byteLength) && typeof manifest.sha256 === 'string' && Array.isArray(manifest.tensors);
  if (!wellFormed) {
    throw new CorruptCheckpointError(folder, MANIFEST_FILE, 'expected byteLength, sha256 and a tensors list');
  }
  const bytes = await readPart(folder, TENSORS_FILE);
  if (bytes.length !== manifest.byteLength) {
    throw new CorruptCheckpointError(
      folder,
      TENSORS_FILE,
      `expected ${manifest.byteLength} bytes (per ${MANIFEST_FILE}), file has ${bytes.length} bytes`,
    );
  }
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== manifest.sha256) {
    throw new CorruptCheckpointError(folder, TENSORS_FILE, `expected SHA-256 ${manifest.sha256}, file has ${digest}`);
  }
  const tensors: NamedTensor[] = manifest.tensors.map((t, k) => {
    const count = isShape(t?.shape) ? elementCount(t.shape) : -1;
    const fits =
      typeof t?.name === 'string' &&
      count >= 0 &&
      t.byteLength === count * FLOAT32_BYTES &&
      Number.isInteger(t.byteOffset) &&
      t.byteOffset >= 0 &&
      t.byteOffset + t.byteLength <= bytes.length;
    if (!fits) {
      throw new CorruptCheckpointError(
        folder,
        MANIFEST_FILE,
        `tensor #${k} ${JSON.stringify(t?.name)}: expected a shape whose size matches byteLength within ` +
          `${bytes.length} bytes, got ${JSON.stringify(t)}`,
      );
    }
    return { name: t.name, shape: [...t.shape], values: readFloat32LE(bytes, t.byteOffset, count) };
  });
  const state: Record<string, unknown> = { ...stateJson };
  delete state.formatVersion;
  return { path: folder, state: state as unknown as CheckpointState, tensors };
}

/**
 * Lays tensors out back to back in `tensors.bin` order; `sha256` is left empty for the writer to fill.
 * @throws CheckpointError (naming `dir`) for a duplicate name or a shape that does not match the values.
 */
export function tensorManifest(dir: string, tensors: readonly NamedTensor[]): TensorManifest {
  const names = new Set<string>();
  let offset = 0;
  const entries = tensors.map((t) => {
    if (typeof t.name !== 'string' || t.name.length === 0 || names.has(t.name)) {
      throw new CheckpointError(dir, `expected unique non-empty tensor names, got ${JSON.stringify(t.name)} again`);
    }
    names.add(t.name);
    if (!isShape(t.shape) || elementCount(t.shape) !== t.values.length) {
      throw new CheckpointError(
        dir,
        `tensor ${t.name}: expected shape [${t.shape}] to hold ${t.values.length} values, ` +
          `it holds ${isShape(t.shape) ? elementCount(t.shape) : 'no valid count'}`,
      );
    }
    const byteLength = t.values.byteLength;
    const entry = { name: t.name, shape: [...t.shape], dtype: 'float32' as const, byteOffset: offset, byteLength };
    offset += t.values.byteLength;
    return entry;
  });
  return { formatVersion: CHECKPOINT_FORMAT_VERSION, byteLength: offset, sha256: '', tensors: entries };
}
