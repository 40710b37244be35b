/**
 * The sweep's state: every trial, its parameters, its per-epoch results, its checkpoints and its
 * early-stopping decisions. It lives in one file, replaced atomically (write a temporary file, fsync,
 * rename), so a sweep killed at any moment, even while writing it, resumes from the last complete state.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SweepStateError } from './errors';
import type { TrialParams } from './sweep-spec';

/** Bumped when the file's layout changes incompatibly. */
export const SWEEP_STATE_VERSION = 1;
/** The state file inside the sweep folder. */
export const SWEEP_STATE_FILE = 'sweep-state.json';

/** A trial's lifecycle. `stopped` (early stopping) and `failed` trials are kept, never deleted. */
export const TRIAL_STATES = ['pending', 'running', 'completed', 'stopped', 'failed'] as const;
export type TrialState = (typeof TRIAL_STATES)[number];

/** Validation (and, when the job evaluates it, test-set) metrics after one epoch. */
export interface EpochResult {
  epoch: number;
  val: { loss: number; top1: number; top5: number };
  train: { loss: number; top1: number };
  /** CIFAR-10's test_batch.bin, when the job sets `data.testSet`: reported beside, never used to decide. */
  test?: { loss: number; top1: number; top5: number };
  /** The trial whose process trained this epoch: itself, or the trial it forked from. */
  ranBy: string;
}

/** One early-stopping decision, taken when the trial had `rung` epochs done. */
export interface RungDecision {
  rung: number;
  /** The objective at the rung. */
  value: number;
  action: 'continue' | 'stop';
  reason: string;
}

/** Everything the sweep knows about one trial. */
export interface TrialRecord {
  /** `t000`, `t001`, ...: the trial's index, zero-padded. */
  id: string;
  index: number;
  params: TrialParams;
  /** The trial's `training.epochs`. */
  epochs: number;
  /** Workers the trial asks for (1: one process). */
  workers: number;
  /** The trial's job spec file (written once, when the trial is created). */
  jobFile: string;
  state: TrialState;
  /** The trial this one shares its first `epochs` epochs with (and forks from), if any. */
  fork: { from: string; epochs: number } | null;
  /** One per epoch done, in order. An entry exists only once the checkpoint after it exists. */
  results: EpochResult[];
  /** Epochs done -> the epoch checkpoint folder taken there (its own, or inherited from its fork). */
  checkpoints: Record<string, string>;
  decisions: RungDecision[];
  /** Run folders of the trial's own processes, oldest first. */
  runDirs: string[];
  /** The failure, as the trial's process reported it. */
  error?: string;
  /** Per-epoch effective-configuration hashes (see `epochSignatures`); empty when sharing is off. */
  signatures: string[];
}

/** The whole state file. */
export interface SweepState {
  version: number;
  name: string;
  /** `SweepSpec.hash` of the spec that started the sweep: a different spec may not resume it. */
  specHash: string;
  trials: TrialRecord[];
  /** Set when the sweep ended (all trials terminal, or stopped by its failure budget). */
  finished: boolean;
  /** Why it ended, when it ended early. */
  stopReason?: string;
}

/** A fresh state for a sweep. */
export function emptyState(name: string, specHash: string): SweepState {
  return { version: SWEEP_STATE_VERSION, name, specHash, trials: [], finished: false };
}

/** Reads the state in `dir`, or returns undefined when there is none yet. */
export function readSweepState(dir: string): SweepState | undefined {
  const file = path.join(dir, SWEEP_STATE_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SweepStateError(file, `cannot read: ${(err as Error).message}`, { cause: err });
  }
  let state: SweepState;
  try {
    state = JSON.parse(text) as SweepState;
  } catch (err) {
    throw new SweepStateError(file, `not valid JSON (${(err as Error).message}); it is only ever replaced by rename, so this is damage from outside`, { cause: err });
  }
  if (state.version !== SWEEP_STATE_VERSION) {
    throw new SweepStateError(file, `expected version ${SWEEP_STATE_VERSION}, found ${state.version}`);
  }
  return state;
}

/** Replaces the state file atomically: temporary file, fsync, rename, fsync of the folder. */
export function writeSweepState(dir: string, state: SweepState): void {
  const file = path.join(dir, SWEEP_STATE_FILE);
  const temp = `${file}.${process.pid}.tmp`;
  try {
    const fd = fs.openSync(temp, 'w');
    try {
      fs.writeSync(fd, `${JSON.stringify(state, null, 1)}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, file);
    const dirFd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dirFd);
    } finally {
      fs.closeSync(dirFd);
    }
  } catch (err) {
    fs.rmSync(temp, { force: true });
    throw new SweepStateError(file, `cannot write: ${(err as Error).message}`, { cause: err });
  }
}

/** Epochs this trial's own processes trained and kept (shared ones are counted for the trial that ran them). */
export function trainedEpochs(trial: TrialRecord): number {
  return trial.results.filter((r) => r.ranBy === trial.id).length;
}

/** Whether a trial will change no more. */
export function isTerminal(trial: TrialRecord): boolean {
  return trial.state === 'completed' || trial.state === 'stopped' || trial.state === 'failed';
}
