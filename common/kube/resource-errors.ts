/**
 * Errors of calls on whole objects (create a Job, list pods, read a claim), in the words of
 * {@link describeApiError}: each names the call, the credentials, and for a 403 the Role rule that is
 * missing, so an operator can paste it.
 */
import type { KubeClientModule } from './client-loader';
import { KubeApiError } from './errors';
import { serverMessage } from './api-errors';

/** One call on a resource, as RBAC sees it. */
export interface ResourceCall {
  /** RBAC verb: create, get, list, delete... */
  verb: string;
  /** API group: `batch`, `` for the core group. */
  group: string;
  /** Plural resource: `jobs`, `pods`. */
  resource: string;
  /** The object, for calls that name one. */
  name?: string;
  namespace: string;
  /** The API server URL. */
  server: string;
  /** Who called (see `KubeAccess.user`). */
  user: string;
  /** Which template grants the caller its Role, for the 403 hint. */
  grantedBy: string;
}

/** The Role rule `call` needs, as YAML a person can paste into a Role. */
export function requiredResourceRule(call: Pick<ResourceCall, 'verb' | 'group' | 'resource'>): string {
  return `{apiGroups: ["${call.group}"], resources: ["${call.resource}"], verbs: ["${call.verb}"]}`;
}

/**
 * Turns what the client threw into a {@link KubeApiError} naming the verb, the resource and, for a 403, the
 * rule to add; an error that is not from the API (a bug) is returned unchanged.
 */
export function describeResourceError(k8s: KubeClientModule, err: unknown, call: ResourceCall): unknown {
  const object = `${call.namespace}/${call.resource}${call.name ? `/${call.name}` : ''}`;
  const what = `${call.verb} ${call.resource}${call.group ? `.${call.group}` : ''}${call.name ? ` "${call.name}"` : ''} in namespace "${call.namespace}"`;
  const context = { verb: call.verb, object };
  if (err instanceof k8s.ApiException) {
    const said = `the API server said: ${serverMessage(err.body)}`;
    const withStatus = { ...context, status: err.code };
    switch (err.code) {
      case 401:
        return new KubeApiError(`unauthorized (401): ${call.server} rejected the credentials of ${call.user}; ${said}`, withStatus, { cause: err });
      case 403:
        return new KubeApiError(
          `forbidden (403): ${call.user} may not ${what}: its Role lacks the verb "${call.verb}" on ${call.resource}. Add the rule ` +
            `${requiredResourceRule(call)}, bound to it by a RoleBinding (${call.grantedBy}); ${said}`,
          withStatus,
          { cause: err },
        );
      case 404:
        return new KubeApiError(`not found (404): ${what} on ${call.server}; ${said}`, withStatus, { cause: err });
      default:
        return new KubeApiError(`${what} failed with HTTP ${err.code}; ${said}`, withStatus, { cause: err });
    }
  }
  if (err instanceof TypeError && err.cause instanceof Error) {
    return new KubeApiError(`cannot reach the Kubernetes API at ${call.server} to ${what}: ${err.cause.message}`, { ...context, status: undefined }, { cause: err });
  }
  return err;
}
