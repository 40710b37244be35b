/**
 * What the sweep loop asks of an executor: start one stretch of a trial, watch it, stop it. The local
 * executor runs child processes; the Kubernetes executor creates Jobs. Both read results the same way,
 * from the run folder the stretch writes (on the shared volume, for Kubernetes).
 */
import type { EpochResult } from './sweep-state';

/** Epochs a run committed (from its `fromEpoch` on) and the checkpoint after each (one-worker runs). */
export interface CommittedEpochs {
  results: Omit<EpochResult, 'ranBy'>[];
  checkpoints: Map<number, string>;
}

/** What to run: one stretch of a trial. */
export interface TrialRunRequest {
  trialId: string;
  jobFile: string;
  workers: number;
  /** Epochs done before this run (0: from scratch). */
  fromEpoch: number;
  /** The epoch checkpoint to start from, when `fromEpoch` > 0 (one-worker runs). */
  resumeFrom?: string;
  /** Stop once this many epochs are done. */
  untilEpoch: number;
  /** One-worker runs: parent of the run folder the trainer creates. Cluster runs: the run folder itself. */
  runsDir: string;
  /** Which of the trial's runs this is (0, 1, ...): part of the run's name where the executor names things. */
  attempt: number;
  dataDir?: string;
  backend?: string;
}

/** How a run ended. */
export interface TrialExit {
  /** Exit 0 / the Job completed. */
  succeeded: boolean;
  /** What ended and how, e.g. `shardwise train --local exited with code 1`, `Job smoke-t000-e0-0 failed (BackoffLimitExceeded)`. */
  what: string;
  /** The run's last output lines (a pod's termination message), for the failure message. */
  detail: string;
  /** The executor itself failed (the API refused a call): not the trial's fault, so the sweep stops with it. */
  error?: Error;
}

/** A running stretch of a trial. */
export interface TrialRun {
  readonly request: TrialRunRequest;
  /** Resolves once the run has ended (or was stopped). */
  readonly ended: Promise<void>;
  /** How it ended; undefined while it runs. */
  exit(): TrialExit | undefined;
  /** The epochs it has finished for good (see `committedEpochs`). */
  committed(): CommittedEpochs;
  /** The epoch in progress and its step. */
  progress(): { epoch: number; step: number } | undefined;
  /** Asks the run to end (early stopping decided against it); does not wait. */
  cancel(): void;
  /** Ends the run (SIGTERM, then SIGKILL; or the Job deleted) and waits until it is gone. */
  stop(): Promise<void>;
}

/** Runs trial stretches somewhere. */
export interface TrialExecutor {
  /** `local` or `kubernetes`, for messages. */
  readonly kind: string;
  /** Capacity units the executor has (cores for the local one; trial slots for Kubernetes). */
  readonly capacity: number;
  /** Units a trial of `workers` workers takes. */
  cost(workers: number): number;
  /** Starts a stretch; rejects when it cannot be started at all (the API refused it). */
  start(request: TrialRunRequest): Promise<TrialRun>;
  /** Releases what the executor holds (API connections, leftover objects of runs it stopped). */
  close(): Promise<void>;
}
