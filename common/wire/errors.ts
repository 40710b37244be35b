import { ShardwiseError } from '../errors';

/**
 * Base of the errors the wire layer throws. Each subclass corresponds to one gRPC status code in
 * `grpc-status.ts`, so a handler can throw it and the peer receives a status it can act on.
 */
export class WireError extends ShardwiseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WireError';
  }
}

/**
 * Chunks that do not reassemble into the tensor they claim to be: wrong total size, a gap or an
 * overlap, a name or shape the manifest does not list, a dtype that changes between slices.
 * Maps to INVALID_ARGUMENT: resending the same bytes cannot succeed.
 */
export class TensorCodecError extends WireError {
  /** Name of the tensor the bad chunk belongs to. */
  readonly tensorName: string;
  constructor(tensorName: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TensorCodecError';
    this.tensorName = tensorName;
  }
}

/** A float tensor holds NaN or ±Infinity (a diverged gradient); maps to INVALID_ARGUMENT. */
export class NonFiniteValueError extends TensorCodecError {
  /** Flat element index of the first bad value found. */
  readonly index: number;
  /** The bad value itself (NaN, Infinity or -Infinity). */
  readonly value: number;
  constructor(tensorName: string, index: number, value: number, elementCount: number) {
    super(
      tensorName,
      `tensor '${tensorName}' has ${value} at element ${index} of ${elementCount}; expected finite values ` +
        '(a diverged step: lower the learning rate or check the inputs)',
    );
    this.name = 'NonFiniteValueError';
    this.index = index;
    this.value = value;
  }
}

/**
 * A message (or a chunk that would become one) is bigger than the configured limit; maps to
 * RESOURCE_EXHAUSTED. Raise the limit on both sides or lower the chunk size.
 */
export class MessageTooLargeError extends WireError {
  readonly sizeBytes: number;
  readonly limitBytes: number;
  constructor(what: string, sizeBytes: number, limitBytes: number) {
    super(`${what} is ${sizeBytes} bytes, over the ${limitBytes}-byte message limit`);
    this.name = 'MessageTooLargeError';
    this.sizeBytes = sizeBytes;
    this.limitBytes = limitBytes;
  }
}

/**
 * The peers disagree on something that must match before work can start: protocol version, model
 * fingerprint, architecture. Maps to FAILED_PRECONDITION (not retried: the worker must be rebuilt).
 */
export class IncompatiblePeerError extends WireError {
  /** What does not match, e.g. `protocolVersion` or `modelFingerprint`. */
  readonly field: string;
  readonly expected: string;
  readonly actual: string;
  constructor(field: string, expected: string | number, actual: string | number) {
    super(`${field}: expected ${expected}, worker has ${actual}`);
    this.name = 'IncompatiblePeerError';
    this.field = field;
    this.expected = String(expected);
    this.actual = String(actual);
  }
}

/**
 * A request refers to a step or config version the coordinator has moved past (or not reached).
 * Maps to FAILED_PRECONDITION: the worker asks for its next order / GetConfig, not resend.
 */
export class StaleRequestError extends WireError {
  /** What is stale: `globalStep` or `configVersion`. */
  readonly field: string;
  readonly expected: number;
  readonly actual: number;
  constructor(field: string, expected: number, actual: number, hint = '') {
    super(`${field}: expected ${expected}, request has ${actual}${hint ? ` (${hint})` : ''}`);
    this.name = 'StaleRequestError';
    this.field = field;
    this.expected = expected;
    this.actual = actual;
  }
}

/** The worker id is not (or no longer) registered, e.g. after its lease expired; maps to NOT_FOUND. */
export class UnknownWorkerError extends WireError {
  readonly workerId: string;
  /** The incarnation the caller claimed, when it claimed one. */
  readonly incarnation?: number;
  constructor(workerId: string, incarnation?: number) {
    super(`worker '${workerId}' is not registered (lease expired or never joined); register again`);
    this.name = 'UnknownWorkerError';
    this.workerId = workerId;
    this.incarnation = incarnation;
  }
}

/**
 * Another live process holds the requested worker id (two pods under one name, or a restarted one whose
 * old incarnation has not gone yet): maps to ALREADY_EXISTS. The registration is admitted once the live
 * incarnation is gone (it left, or its lease expired), never by dropping it.
 */
export class WorkerIdInUseError extends WireError {
  readonly workerId: string;
  constructor(workerId: string, message: string) {
    super(message);
    this.name = 'WorkerIdInUseError';
    this.workerId = workerId;
  }
}

/**
 * The caller did not prove who it is: no client certificate, or no (or a wrong) join token. Maps to
 * UNAUTHENTICATED, never retried. The message names what is missing and nothing the caller could use.
 */
export class UnauthenticatedError extends WireError {
  constructor(message: string) {
    super(message);
    this.name = 'UnauthenticatedError';
  }
}

/**
 * The caller is known but may not do this: a worker's certificate on an operator call, or a worker id
 * other than the one its certificate names. Maps to PERMISSION_DENIED, never retried.
 */
export class PermissionDeniedError extends WireError {
  constructor(message: string) {
    super(message);
    this.name = 'PermissionDeniedError';
  }
}

/** The coordinator cannot serve the call right now (starting, draining); maps to UNAVAILABLE, retried. */
export class NotReadyError extends WireError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NotReadyError';
  }
}

/**
 * A call to the peer failed with a gRPC status: the client-side view of any of the errors above, or
 * of a transport failure (UNAVAILABLE when the server went away, DEADLINE_EXCEEDED when it went
 * silent). `grpc-status.ts` builds it; `retryable` says whether the retry policy would try again.
 */
export class RpcError extends WireError {
  /** Numeric gRPC status code (`status.UNAVAILABLE` …). */
  readonly code: number;
  /** Its name, e.g. `UNAVAILABLE`. */
  readonly codeName: string;
  /** Service and method, e.g. `Coordinator/PushGradients`. */
  readonly method: string;
  /** The status details the peer (or grpc-js) sent. */
  readonly details: string;
  readonly retryable: boolean;
  constructor(
    method: string,
    code: number,
    codeName: string,
    details: string,
    retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(`${method} failed with ${codeName}: ${details}`, options);
    this.name = 'RpcError';
    this.method = method;
    this.code = code;
    this.codeName = codeName;
    this.details = details;
    this.retryable = retryable;
  }
}
