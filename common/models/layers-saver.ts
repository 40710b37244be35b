/**
 * Saves a LayersModel as a standard TF.js layers folder (model.json + weights.bin), atomically.
 *
 * Run checkpoints are read back after crashes, so a half-written folder must never be visible under the
 * final name: everything is written and fsynced in a sibling temp folder that is then renamed into place.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ModelSaveError } from './errors';

/** Name of the single weight shard `saveLayersModel` writes. */
export const WEIGHTS_FILE = 'weights.bin';
/** Name of the topology + manifest file. */
export const MODEL_JSON_FILE = 'model.json';

/**
 * Writes `model` to the folder `dir` (created with its parents; an existing folder is replaced as a whole).
 * The result loads with `loadLayersModelFrom(dir)` or tfjs-node's `tf.loadLayersModel('file://.../model.json')`.
 * Weights are stored under their original names (`conv1/kernel`), never the process-unique `_1` suffixes.
 */
export async function saveLayersModel(model: tf.LayersModel, dir: string): Promise<tf.io.SaveResult> {
  const target = path.resolve(dir);
  try {
    return await model.save(fileSaveHandler(target));
  } catch (err) {
    if (err instanceof ModelSaveError) throw err;
    throw new ModelSaveError(target, `cannot save the model: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err });
  }
}

/** A tf.io save handler writing model.json + weights.bin into `dir` through a temp folder and a rename. */
export function fileSaveHandler(dir: string): tf.io.IOHandler {
  return {
    save: async (artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> => {
      const topology = artifacts.modelTopology;
      if (topology === undefined || topology instanceof ArrayBuffer) {
        throw new ModelSaveError(dir, `expected a JSON layers topology, got ${topology === undefined ? 'none' : 'a binary one'}`);
      }
      const weightData = artifacts.weightData === undefined
        ? new ArrayBuffer(0)
        : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      const modelJson: tf.io.ModelJSON = {
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        modelTopology: topology,
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
      };
      if (artifacts.trainingConfig !== undefined) modelJson.trainingConfig = artifacts.trainingConfig;
      if (artifacts.userDefinedMetadata !== undefined) modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;

      await writeFolderAtomically(dir, [
        [MODEL_JSON_FILE, Buffer.from(JSON.stringify(modelJson))],
        [WEIGHTS_FILE, new Uint8Array(weightData)],
      ]);
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
  };
}

/**
 * Writes `files` into a fresh sibling temp folder, fsyncs them, and renames it to `dir`. An existing `dir`
 * is first renamed aside and removed only after the new one is in place, so a crash leaves either the old
 * or the new checkpoint (plus a stray `.old`/`.tmp` sibling), never a mix.
 */
async function writeFolderAtomically(dir: string, files: Array<[string, Uint8Array]>): Promise<void> {
  const parent = path.dirname(dir);
  const stamp = `${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const tmp = path.join(parent, `.${path.basename(dir)}.tmp-${stamp}`);
  const old = path.join(parent, `.${path.basename(dir)}.old-${stamp}`);
  try {
    await fs.mkdir(tmp, { recursive: true });
    for (const [name, bytes] of files) {
      const handle = await fs.open(path.join(tmp, name), 'w');
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    let movedAside = false;
    try {
      await fs.rename(dir, old);
      movedAside = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    try {
      await fs.rename(tmp, dir);
    } catch (err) {
      if (movedAside) await fs.rename(old, dir).catch(() => undefined);
      throw err;
    }
    if (movedAside) await fs.rm(old, { recursive: true, force: true });
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelSaveError(dir, `cannot write the model folder: ${code ?? (err as Error).message}`, { cause: err });
  }
}
