import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { DatasetError } from './errors';

/** Side length of a CIFAR-10 image in pixels. */
export const CIFAR10_IMAGE_SIZE = 32;
/** Colour channels per pixel (RGB). */
export const CIFAR10_CHANNELS = 3;
/** Bytes of one decoded image (32*32*3). */
export const CIFAR10_IMAGE_BYTES = CIFAR10_IMAGE_SIZE * CIFAR10_IMAGE_SIZE * CIFAR10_CHANNELS;
/** Bytes of one record in the official binary format: 1 label byte, then the R, G and B planes. */
export const CIFAR10_RECORD_BYTES = 1 + CIFAR10_IMAGE_BYTES;
/** Pixels per colour plane in a record. */
const PLANE_BYTES = CIFAR10_IMAGE_SIZE * CIFAR10_IMAGE_SIZE;

/** Class names in label order, as in the official `batches.meta.txt`. */
export const CIFAR10_CLASSES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
] as const;
export type Cifar10ClassName = (typeof CIFAR10_CLASSES)[number];

/** File names of the official training batches, in order. */
export const CIFAR10_TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
/** File name of the official test batch. */
export const CIFAR10_TEST_FILE = 'test_batch.bin';

/**
 * Decoded CIFAR-10 images. Pixels are stored HWC (row, column, channel), image after image, which is
 * the NHWC order tfjs convolutions expect, so a batch can be wrapped in a tensor without transposing.
 */
export interface Cifar10Images {
  /** `count * 32 * 32 * 3` bytes, NHWC. */
  images: Uint8Array;
  /** `count` labels in 0..9. */
  labels: Uint8Array;
  count: number;
}

/**
 * Decodes records in the official binary format. The records store each colour as its own plane (CHW);
 * they are interleaved to HWC here, once, rather than on every batch.
 */
export function decodeCifar10Records(bytes: Uint8Array, sourcePath = '<buffer>'): Cifar10Images {
  if (bytes.length === 0) {
    throw new DatasetError(sourcePath, `${sourcePath}: empty file, expected 3073-byte CIFAR-10 records`);
  }
  if (bytes.length % CIFAR10_RECORD_BYTES !== 0) {
    throw new DatasetError(
      sourcePath,
      `${sourcePath}: expected ${CIFAR10_RECORD_BYTES}-byte records, file has ${bytes.length} bytes ` +
        `(${Math.floor(bytes.length / CIFAR10_RECORD_BYTES)} records and ${bytes.length % CIFAR10_RECORD_BYTES} ` +
        'bytes left over)',
    );
  }
  const count = bytes.length / CIFAR10_RECORD_BYTES;
  const images = new Uint8Array(count * CIFAR10_IMAGE_BYTES);
  const labels = new Uint8Array(count);
  for (let n = 0; n < count; n++) {
    const rec = n * CIFAR10_RECORD_BYTES;
    const label = bytes[rec];
    if (label >= CIFAR10_CLASSES.length) {
      throw new DatasetError(
        sourcePath,
        `${sourcePath}: record ${n} (byte offset ${rec}) has label ${label}, expected 0..${CIFAR10_CLASSES.length - 1}`,
      );
    }
    labels[n] = label;
    const r = rec + 1;
    const g = r + PLANE_BYTES;
    const b = g + PLANE_BYTES;
    let o = n * CIFAR10_IMAGE_BYTES;
    for (let p = 0; p < PLANE_BYTES; p++) {
      images[o++] = bytes[r + p];
      images[o++] = bytes[g + p];
      images[o++] = bytes[b + p];
    }
  }
  return { images, labels, count };
}

/** Reads one CIFAR-10 binary batch file (e.g. `data_batch_1.bin`). */
export async function readCifar10File(filePath: string): Promise<Cifar10Images> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(filePath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? String(err)})`;
    throw new DatasetError(filePath, `${filePath}: ${what}, expected a CIFAR-10 binary batch`, { cause: err });
  }
  return decodeCifar10Records(bytes, filePath);
}

/**
 * Loads a split from a folder in the official layout (`cifar-10-batches-bin`). `train` reads whichever of
 * data_batch_1..5.bin are present, in order, so a partial copy still works; `test` reads test_batch.bin.
 */
export async function loadCifar10(dir: string, split: 'train' | 'test'): Promise<Cifar10Images> {
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch (err) {
    throw new DatasetError(dir, `CIFAR-10 folder ${dir} cannot be read, expected a folder with data_batch_*.bin`, {
      cause: err,
    });
  }
  const wanted = split === 'train' ? CIFAR10_TRAIN_FILES : [CIFAR10_TEST_FILE];
  const present = wanted.filter((name) => entries.includes(name));
  if (present.length === 0) {
    throw new DatasetError(
      dir,
      `no CIFAR-10 ${split} files in ${dir}: looked for ${wanted.join(', ')}, found ` +
        (entries.length === 0 ? 'an empty folder' : entries.slice(0, 10).join(', ')),
    );
  }
  const parts = await Promise.all(present.map((name) => readCifar10File(path.join(dir, name))));
  return concat(parts);
}

/** Joins image sets end to end, keeping their order. */
export function concat(parts: readonly Cifar10Images[]): Cifar10Images {
  if (parts.length === 1) return parts[0];
  const count = parts.reduce((sum, p) => sum + p.count, 0);
  const images = new Uint8Array(count * CIFAR10_IMAGE_BYTES);
  const labels = new Uint8Array(count);
  let n = 0;
  for (const p of parts) {
    images.set(p.images.subarray(0, p.count * CIFAR10_IMAGE_BYTES), n * CIFAR10_IMAGE_BYTES);
    labels.set(p.labels.subarray(0, p.count), n);
    n += p.count;
  }
  return { images, labels, count };
}

/** Copies the images at `indices` (in that order) into a new set. */
export function subset(data: Cifar10Images, indices: ArrayLike<number>): Cifar10Images {
  const count = indices.length;
  const images = new Uint8Array(count * CIFAR10_IMAGE_BYTES);
  const labels = new Uint8Array(count);
  for (let k = 0; k < count; k++) {
    const i = indices[k];
    if (!Number.isInteger(i) || i < 0 || i >= data.count) {
      throw new RangeError(`subset: index ${i} at position ${k} is outside 0..${data.count - 1}`);
    }
    images.set(data.images.subarray(i * CIFAR10_IMAGE_BYTES, (i + 1) * CIFAR10_IMAGE_BYTES), k * CIFAR10_IMAGE_BYTES);
    labels[k] = data.labels[i];
  }
  return { images, labels, count };
}

/** Number of images per class, indexed by label. */
export function classCounts(data: Cifar10Images): number[] {
  const counts = new Array<number>(CIFAR10_CLASSES.length).fill(0);
  for (let i = 0; i < data.count; i++) counts[data.labels[i]]++;
  return counts;
}

/**
 * Encodes images back into the official binary format. Used to build fixtures and to export subsets;
 * the inverse of {@link decodeCifar10Records}.
 */
export function encodeCifar10Records(data: Cifar10Images): Uint8Array {
  const out = new Uint8Array(data.count * CIFAR10_RECORD_BYTES);
  for (let n = 0; n < data.count; n++) {
    const rec = n * CIFAR10_RECORD_BYTES;
    out[rec] = data.labels[n];
    let src = n * CIFAR10_IMAGE_BYTES;
    for (let p = 0; p < PLANE_BYTES; p++) {
      out[rec + 1 + p] = data.images[src++];
      out[rec + 1 + PLANE_BYTES + p] = data.images[src++];
      out[rec + 1 + 2 * PLANE_BYTES + p] = data.images[src++];
    }
  }
  return out;
}
