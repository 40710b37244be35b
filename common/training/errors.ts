import { ShardwiseError } from '../errors';

/**
 * A tensor handed to the training core has the wrong shape, dtype or size (a batch, a gradient,
 * a serialised optimizer slot). Carries the name of the offending input so the caller can tell a
 * bad batch from a bad gradient message.
 */
export class TrainingShapeError extends ShardwiseError {
  /** What was checked, e.g. `batch.x`, `grad conv1/kernel`, `slot dense/kernel.m`. */
  readonly subject: string;
  constructor(subject: string, message: string, options?: { cause?: unknown }) {
    super(`${subject}: ${message}`, options);
    this.name = 'TrainingShapeError';
    this.subject = subject;
  }
}

/**
 * Optimizer state cannot be restored or applied: a slot for a variable the model does not have,
 * a state written by another optimizer type, or a gradient for an unknown variable.
 */
export class OptimizerStateError extends ShardwiseError {
  /** Variable (or slot) name the problem concerns, when there is one. */
  readonly variable?: string;
  constructor(message: string, options?: { cause?: unknown; variable?: string }) {
    super(message, options);
    this.name = 'OptimizerStateError';
    this.variable = options?.variable;
  }
}

/** Training produced a non-finite loss: the run cannot continue meaningfully. */
export class DivergenceError extends ShardwiseError {
  readonly epoch: number;
  readonly globalStep: number;
  readonly loss: number;
  constructor(epoch: number, globalStep: number, loss: number) {
    super(`expected a finite training loss, got ${loss} at epoch ${epoch}, global step ${globalStep}`);
    this.name = 'DivergenceError';
    this.epoch = epoch;
    this.globalStep = globalStep;
    this.loss = loss;
  }
}

/**
 * A share thread (see ShareThreads) failed: its micro-batch threw, it could not start, or it died. The
 * share it was computing is lost, never half-summed; `cause` holds the thread's own error when it sent one.
 */
export class ShareThreadError extends ShardwiseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ShareThreadError';
  }
}
