import type { KubeClientModule } from './client-loader';
import { KubeApiError } from './errors';

/** What a failed call was: enough to say which RBAC rule or object it needed. */
export interface KubeCall {
  verb: 'get' | 'patch';
  namespace: string;
  statefulSet: string;
  server: string;
  user: string;
}

/** The content type shardwise patches with; client-node's default (JSON patch) would need an array body. */
export const MERGE_PATCH = 'application/merge-patch+json';

/** The `message` of a Kubernetes Status body (the client hands the body over as text), else the text. */
export function serverMessage(body: unknown): string {
  if (typeof body !== 'string') return JSON.stringify(body ?? '');
  try {
    const status = JSON.parse(body) as { message?: unknown };
    if (typeof status.message === 'string') return status.message;
  } catch {
    // Not JSON: the text itself is the message.
  }
  return body.trim().slice(0, 300);
}

/** The Role rule `call` needs, as YAML a person can paste into a Role. */
export function requiredRule(call: Pick<KubeCall, 'verb' | 'statefulSet'>): string {
  return `{apiGroups: ["apps"], resources: ["statefulsets/scale"], resourceNames: ["${call.statefulSet}"], verbs: ["${call.verb}"]}`;
}

/**
 * Turns what the client threw into a {@link KubeApiError} naming the RBAC rule or the object that is
 * missing; an error that is not from the API (a bug) is returned unchanged.
 */
export function describeApiError(k8s: KubeClientModule, err: unknown, call: KubeCall): unknown {
  const object = `${call.namespace}/${call.statefulSet}`;
  const what = `${call.verb} statefulsets/scale "${call.statefulSet}" in namespace "${call.namespace}"`;
  if (err instanceof k8s.ApiException) {
    const said = `the API server said: ${serverMessage(err.body)}`;
    const context = { status: err.code, verb: call.verb, object };
    switch (err.code) {
      case 401:
        return new KubeApiError(`unauthorized (401): ${call.server} rejected the credentials of ${call.user}; ${said}`, context, { cause: err });
      case 403:
        return new KubeApiError(
          `forbidden (403): ${call.user} may not ${what}. Its Role needs the rule ${requiredRule(call)}, bound to it by a ` +
            `RoleBinding (the chart's role-coordinator.yaml and rolebinding-coordinator.yaml grant it to the coordinator); ${said}`,
          context,
          { cause: err },
        );
      case 404:
        return new KubeApiError(
          `not found (404): no StatefulSet "${call.statefulSet}" in namespace "${call.namespace}" on ${call.server} ` +
            `(the chart names it <release>-shardwise-worker; check --statefulset and --namespace); ${said}`,
          context,
          { cause: err },
        );
      case 409:
        return new KubeApiError(`conflict (409): the scale of ${object} kept changing while it was being patched; ${said}`, context, { cause: err });
      case 415:
        return new KubeApiError(`unsupported media type (415) on ${what}: the patch must be sent as ${MERGE_PATCH}; ${said}`, context, { cause: err });
      default:
        return new KubeApiError(`${what} failed with HTTP ${err.code}; ${said}`, context, { cause: err });
    }
  }
  if (err instanceof TypeError && err.cause instanceof Error) {
    // undici's fetch: a network failure is `TypeError: fetch failed` with the socket error as its cause.
    return new KubeApiError(`cannot reach the Kubernetes API at ${call.server} to ${what}: ${err.cause.message}`, {
      status: undefined,
      verb: call.verb,
      object,
    }, { cause: err });
  }
  return err;
}

/** Whether `err` is the API's 409 Conflict: another writer changed the object since it was read. */
export function isConflict(k8s: KubeClientModule, err: unknown): boolean {
  return err instanceof k8s.ApiException && err.code === 409;
}
