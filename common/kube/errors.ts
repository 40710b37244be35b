import { ShardwiseError } from '../errors';

/** A Kubernetes API call failed; the message names what is missing (the RBAC rule, the object) and why. */
export class KubeApiError extends ShardwiseError {
  /** The HTTP status the API server answered with; undefined when it could not be reached. */
  readonly status: number | undefined;
  /** The verb that failed: `get` or `patch`. */
  readonly verb: string;
  /** `<namespace>/<statefulset>` the call was about. */
  readonly object: string;
  constructor(message: string, context: { status: number | undefined; verb: string; object: string }, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KubeApiError';
    this.status = context.status;
    this.verb = context.verb;
    this.object = context.object;
  }
}

/** No Kubernetes configuration was found (no kubeconfig, not in a pod), or the one found is unusable. */
export class KubeConfigError extends ShardwiseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KubeConfigError';
  }
}
