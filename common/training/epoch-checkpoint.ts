/**
 * Training checkpoints of the single-process trainer, taken at epoch boundaries: every model variable
 * (BatchNorm statistics included), the optimizer's slots and counters, and the schedule position and
 * plateau state. A run resumed from one continues bit-identically to the run that wrote it, which is what
 * lets a sweep run a shared prefix of epochs once and fork trials from it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { modelFingerprint, namedVariables, weightsHash } from '../models';
import { OptimizerStateError } from './errors';
import type { OptimizerState, VariableOptimizerState } from './optimizer';
import type { PlateauState } from './reduce-lr-on-plateau';
import { OPTIMIZER_PREFIX } from './replica-update';
import { restoreTrainerState, snapshotTrainerState, type TrainerState } from './trainer-state';

/** Bumped when the layout changes incompatibly; readers reject other versions. */
export const EPOCH_CHECKPOINT_VERSION = 1;
const STATE_FILE = 'trainer-state.json';
const TENSORS_FILE = 'tensors.bin';

/** What `trainer-state.json` holds; the float arrays live in `tensors.bin`, in `tensors` order. */
interface EpochCheckpointFile {
  formatVersion: number;
  /** Epochs finished: the run resumes at this (0-based) epoch. */
  epochsDone: number;
  globalStep: number;
  plateau: PlateauState | null;
  optimizer: { type: OptimizerState['type']; step: number; variableSteps: Record<string, number> };
  modelFingerprint: string;
  /** `weightsHash` of the model when saved: a resumed run can prove it holds the same bytes. */
  weightsHash: string;
  sha256: string;
  tensors: { name: string; shape: number[] }[];
}

/** What {@link readEpochCheckpointInfo} tells without loading tensors. */
export interface EpochCheckpointInfo {
  epochsDone: number;
  weightsHash: string;
}

/**
 * Saves the trainer's state between two epochs (after `endEpoch`, so the plateau state is included) into
 * `dir`, atomically: written into a temporary sibling folder and renamed into place, so a reader (or a
 * resume after SIGKILL) sees either no checkpoint or a complete one.
 */
export function saveEpochCheckpoint(state: TrainerState, dir: string): void {
  const snap = snapshotTrainerState(state);
  if (snap.stepInEpoch !== state.stepsPerEpoch) {
    throw new OptimizerStateError(`epoch checkpoint: expected the end of epoch ${snap.epoch} (step ${state.stepsPerEpoch}), ` +
      `the trainer is at step ${snap.stepInEpoch}`);
  }
  const named = namedVariables(state.parts);
  const tensors: { name: string; shape: number[]; values: Float32Array }[] = [...named.backbone, ...named.head]
    .map((v) => ({ name: v.originalName, shape: [...v.shape] as number[], values: v.read().dataSync() as Float32Array }));
  const variableSteps: Record<string, number> = {};
  for (const [name, v] of snap.optimizer.variables) {
    variableSteps[name] = v.step;
    for (const [slot, values] of Object.entries(v.slots)) tensors.push({ name: `${OPTIMIZER_PREFIX}${slot}/${name}`, shape: v.shape, values });
  }
  const bytes = Buffer.concat(tensors.map((t) => Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength)));
  const file: EpochCheckpointFile = {
    formatVersion: EPOCH_CHECKPOINT_VERSION,
    epochsDone: snap.epoch + 1,
    globalStep: snap.globalStep,
    plateau: snap.plateau,
    optimizer: { type: snap.optimizer.type, step: snap.optimizer.step, variableSteps },
    modelFingerprint: modelFingerprint(state.parts),
    weightsHash: weightsHash(state.parts),
    sha256: createHash('sha256').update(bytes).digest('hex'),
    tensors: tensors.map((t) => ({ name: t.name, shape: t.shape })),
  };
  const temp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(temp, { recursive: true, force: true });
  fs.mkdirSync(temp, { recursive: true });
  fs.writeFileSync(path.join(temp, TENSORS_FILE), bytes);
  fs.writeFileSync(path.join(temp, STATE_FILE), `${JSON.stringify(file, null, 1)}\n`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(temp, dir);
}

/** Epochs done and weights hash of the checkpoint in `dir`; throws when it is missing or not one. */
export function readEpochCheckpointInfo(dir: string): EpochCheckpointInfo {
  const file = readStateFile(dir);
  return { epochsDone: file.epochsDone, weightsHash: file.weightsHash };
}

/**
 * Loads the checkpoint in `dir` into a fresh trainer state (built from the same model spec), so the next
 * epoch run is `epochsDone`. @throws OptimizerStateError naming the checkpoint when it does not fit the
 * model, its tensors are damaged, or the restored weights hash differs from the saved one.
 */
export function restoreEpochCheckpoint(state: TrainerState, dir: string): EpochCheckpointInfo {
  const file = readStateFile(dir);
  const fail = (what: string): never => {
    throw new OptimizerStateError(`epoch checkpoint ${dir}: ${what}`);
  };
  if (file.modelFingerprint !== modelFingerprint(state.parts)) {
    fail(`written for model ${file.modelFingerprint}, this job builds ${modelFingerprint(state.parts)}`);
  }
  const bytes = fs.readFileSync(path.join(dir, TENSORS_FILE));
  if (createHash('sha256').update(bytes).digest('hex') !== file.sha256) fail(`${TENSORS_FILE} does not match its SHA-256 (damaged)`);
  const values = new Map<string, Float32Array>();
  let offset = 0;
  for (const t of file.tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    const copy = new Float32Array(count);
    new Uint8Array(copy.buffer).set(bytes.subarray(offset, offset + count * 4));
    values.set(t.name, copy);
    offset += count * 4;
  }
  if (offset !== bytes.length) fail(`expected ${offset} bytes of tensors, found ${bytes.length}`);
  const named = namedVariables(state.parts);
  tf.tidy(() => {
    for (const v of [...named.backbone, ...named.head]) {
      const saved = values.get(v.originalName) ?? fail(`lacks variable ${v.originalName}`);
      v.write(tf.tensor(saved, v.shape as number[], 'float32'));
    }
  });
  const variables = new Map<string, VariableOptimizerState>();
  for (const [name, step] of Object.entries(file.optimizer.variableSteps)) {
    const slots: Record<string, Float32Array> = {};
    const shape = file.tensors.find((t) => t.name.startsWith(OPTIMIZER_PREFIX) && t.name.endsWith(`/${name}`))?.shape
      ?? (named.backbone.concat(named.head).find((v) => v.originalName === name)?.shape as number[] | undefined)
      ?? fail(`optimizer state for unknown variable ${name}`);
    for (const [key, arr] of values) {
      if (!key.startsWith(OPTIMIZER_PREFIX) || !key.endsWith(`/${name}`)) continue;
      const slot = key.slice(OPTIMIZER_PREFIX.length, key.length - name.length - 1);
      if (!slot.includes('/')) slots[slot] = arr;
    }
    variables.set(name, { step, shape, slots });
  }
  restoreTrainerState(state, {
    epoch: file.epochsDone - 1,
    stepInEpoch: state.stepsPerEpoch,
    globalStep: file.globalStep,
    optimizer: { type: file.optimizer.type, step: file.optimizer.step, variables },
    plateau: file.plateau,
  });
  const restored = weightsHash(state.parts);
  if (restored !== file.weightsHash) fail(`restored weights hash ${restored}, saved ${file.weightsHash}`);
  return { epochsDone: file.epochsDone, weightsHash: file.weightsHash };
}

function readStateFile(dir: string): EpochCheckpointFile {
  let file: EpochCheckpointFile;
  try {
    file = JSON.parse(fs.readFileSync(path.join(dir, STATE_FILE), 'utf8')) as EpochCheckpointFile;
  } catch (err) {
    throw new OptimizerStateError(`epoch checkpoint ${dir}: cannot read ${STATE_FILE}: ${(err as Error).message}`, { cause: err });
  }
  if (file.formatVersion !== EPOCH_CHECKPOINT_VERSION) {
    throw new OptimizerStateError(`epoch checkpoint ${dir}: expected format version ${EPOCH_CHECKPOINT_VERSION}, found ${file.formatVersion}`);
  }
  return file;
}
