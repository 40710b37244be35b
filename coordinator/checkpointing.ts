import * as tf from '@tensorflow/tfjs';
import {
  type JobSpec,
  namedVariables,
  OPTIMIZER_PREFIX,
  type OptimizerState,
  type PlateauState,
  restoreTrainerState,
  type TrainerState,
  type VariableOptimizerState,
} from '../common';
import type { Checkpoint, CheckpointState, JsonValue, NamedTensor } from './checkpoint-format';
import { jobSpecHash } from './checkpoint-format';
import type { LedgerState } from './epoch-ledger';
import { CheckpointError, ResumeError } from './errors';
import type { JobContext } from './job-context';
import { type StepPosition, modelTensors } from './step';

/** Running training sums of the epoch in progress, so a resumed epoch reports the whole epoch. */
export interface EpochTrainSums {
  lossSum: number;
  correctTop1: number;
  correctTop5: number;
  count: number;
}

/** A step boundary: where the job stands between two rounds, as a checkpoint records it. */
export interface Boundary {
  /** The next step to run; `step === stepsPerEpoch` means the epoch's steps are done and its evaluation is not. */
  position: StepPosition;
  ledger: LedgerState;
  epochTrain: EpochTrainSums;
}

/** What a checkpoint's `schedule` field holds. */
interface ScheduleJson {
  trainer: { epoch: number; stepInEpoch: number; globalStep: number; plateau: PlateauState | null };
  epochTrain: EpochTrainSums;
  desiredWorkers: number;
}

/** What a checkpoint's `optimizer` field holds; the slots themselves are tensors. */
interface OptimizerJson {
  type: OptimizerState['type'];
  step: number;
  variables: Record<string, { step: number; shape: number[] }>;
}

/**
 * Hash of the parts of a job spec that decide the training trajectory (seed, data selection and
 * augmentation, model, batch sizes, optimizer, groups, freeze, schedule). Output folders, the data folder
 * and the cluster's timings may change between a crash and the resume; these may not.
 */
export function trainingSpecHash(spec: JobSpec): string {
  const { seed, model, training, optimizer, paramGroups, freeze, schedule } = spec;
  // jobSpecHash leaves undefined fields out, so the data folder does not count.
  const data = { ...spec.data, dir: undefined };
  return jobSpecHash({ seed, data, model, training, optimizer, paramGroups, freeze, schedule });
}

/**
 * Everything needed to resume at `boundary`: every model variable, the optimizer slots (named
 * `optimizer/<slot>/<variable>`), the trainer's schedule position and plateau state, both versions and the
 * ledger. Taken only at step boundaries, where the weights are exactly those of `boundary`.
 */
export function captureCheckpoint(job: JobContext, boundary: Boundary): { state: CheckpointState; tensors: NamedTensor[] } {
  job.settleReplica();
  const tensors: NamedTensor[] = modelTensors(job.parts).map((t) => ({
    name: t.name,
    shape: t.shape,
    values: t.data as Float32Array,
  }));
  const optimizer = job.trainer.optimizer.getState();
  const variables: OptimizerJson['variables'] = {};
  for (const [name, v] of optimizer.variables) {
    variables[name] = { step: v.step, shape: [...v.shape] };
    for (const [slot, values] of Object.entries(v.slots)) {
      tensors.push({ name: `${OPTIMIZER_PREFIX}${slot}/${name}`, shape: [...v.shape], values });
    }
  }
  const t = job.trainer;
  const schedule: ScheduleJson = {
    trainer: { epoch: t.epoch, stepInEpoch: t.stepInEpoch, globalStep: t.globalStep, plateau: t.plateau?.getState() ?? null },
    epochTrain: { ...boundary.epochTrain },
    desiredWorkers: job.members.desiredWorkers,
  };
  const optimizerJson: OptimizerJson = { type: optimizer.type, step: optimizer.step, variables };
  return {
    state: {
      epoch: boundary.position.epoch,
      step: boundary.position.step,
      globalStep: job.weightsVersion,
      configVersion: job.configVersion,
      weightsVersion: job.weightsVersion,
      schedule: schedule as unknown as JsonValue,
      optimizer: optimizerJson as unknown as JsonValue,
      ledger: boundary.ledger,
      jobSpecHash: trainingSpecHash(job.spec),
    },
    tensors,
  };
}

/** What {@link restoreCheckpoint} returns for the job loop. */
export interface Restored {
  boundary: Boundary;
  configVersion: number;
  weightsVersion: number;
  desiredWorkers: number;
}

/**
 * Writes a checkpoint's weights and optimizer slots into the model and trainer and returns where to go
 * on. @throws ResumeError when it was written by a job that trains differently, CheckpointError when a
 * tensor does not fit the model.
 */
export function restoreCheckpoint(trainer: TrainerState, spec: JobSpec, runDir: string, checkpoint: Checkpoint): Restored {
  const { state } = checkpoint;
  if (state.jobSpecHash !== trainingSpecHash(spec)) {
    throw new ResumeError(runDir, `checkpoint ${checkpoint.path} was written by a job spec that trains differently ` +
      '(seed, data, model, training, optimizer, paramGroups, freeze or schedule changed); start a new run instead');
  }
  const byName = new Map(checkpoint.tensors.map((t) => [t.name, t]));
  const named = namedVariables(trainer.parts);
  tf.tidy(() => {
    for (const v of [...named.backbone, ...named.head]) {
      const saved = byName.get(v.originalName);
      const shape = v.shape as number[];
      if (!saved || saved.shape.length !== shape.length || saved.shape.some((d, k) => d !== shape[k])) {
        throw new CheckpointError(checkpoint.path, `expected variable ${v.originalName} [${shape.join(',')}], ` +
          (saved ? `found [${saved.shape.join(',')}]` : 'found none'));
      }
      v.write(tf.tensor(saved.values, shape, 'float32'));
    }
  });
  const schedule = state.schedule as unknown as ScheduleJson;
  const optimizer = state.optimizer as unknown as OptimizerJson;
  const variables = new Map<string, VariableOptimizerState>();
  for (const [name, v] of Object.entries(optimizer.variables)) {
    const slots: Record<string, Float32Array> = {};
    for (const t of checkpoint.tensors) {
      const prefix = `${OPTIMIZER_PREFIX}`;
      if (!t.name.startsWith(prefix) || !t.name.endsWith(`/${name}`)) continue;
      const slot = t.name.slice(prefix.length, t.name.length - name.length - 1);
      if (!slot.includes('/')) slots[slot] = t.values;
    }
    variables.set(name, { step: v.step, shape: v.shape, slots });
  }
  restoreTrainerState(trainer, {
    ...schedule.trainer,
    optimizer: { type: optimizer.type, step: optimizer.step, variables },
  });
  return {
    boundary: { position: { epoch: state.epoch, step: state.step }, ledger: state.ledger, epochTrain: schedule.epochTrain },
    configVersion: state.configVersion,
    weightsVersion: state.weightsVersion,
    desiredWorkers: schedule.desiredWorkers,
  };
}
