import { ShardwiseError } from '../errors';

/** Base class of the errors the compute engine throws; catch this to handle any of them. */
export class ComputeError extends ShardwiseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ComputeError';
  }
}

/**
 * A backend that was asked for explicitly (option or `SHARDWISE_BACKEND`) cannot run here. The
 * message names the npm package to install, because that is almost always the fix.
 */
export class BackendUnavailableError extends ComputeError {
  /** The backend that was asked for. */
  readonly backend: string;
  /** The npm package(s) that provide it. */
  readonly packageName: string;
  constructor(backend: string, packageName: string, reason: string, options?: { cause?: unknown }) {
    super(
      `backend '${backend}' was requested but is not available (${reason}); ` +
        `install it with \`npm install ${packageName}\` or choose another backend`,
      options,
    );
    this.name = 'BackendUnavailableError';
    this.backend = backend;
    this.packageName = packageName;
  }
}

/**
 * One of our wasm training kernels was called with attributes it does not implement (dilated
 * gradients, NCHW data). Raised instead of returning a silently wrong gradient.
 */
export class UnsupportedKernelError extends ComputeError {
  /** tfjs kernel name, e.g. `Conv2DBackpropFilter`. */
  readonly kernelName: string;
  /** The attribute that is out of range. */
  readonly attr: string;
  constructor(kernelName: string, attr: string, expected: string, found: unknown) {
    super(
      `wasm ${kernelName}: expected ${attr} ${expected}, got ${JSON.stringify(found)} ` +
        `(use the cpu or tensorflow backend for this model)`,
    );
    this.name = 'UnsupportedKernelError';
    this.kernelName = kernelName;
    this.attr = attr;
  }
}

/** A kernel input does not have the shape the kernel's other inputs and attributes imply. */
export class KernelShapeError extends ComputeError {
  /** tfjs kernel name, e.g. `Conv2DBackpropFilter`. */
  readonly kernelName: string;
  /** The input whose shape is wrong. */
  readonly input: string;
  constructor(kernelName: string, input: string, expected: readonly number[], found: readonly number[]) {
    super(`wasm ${kernelName}: expected ${input} of shape [${expected.join(', ')}], got [${found.join(', ')}]`);
    this.name = 'KernelShapeError';
    this.kernelName = kernelName;
    this.input = input;
  }
}
