/**
 * Whole-object routes for the fake API server (create, get, list with an equality labelSelector, delete
 * with a propagation policy), answering as a real server does: 409 AlreadyExists, 404 NotFound, 422 Invalid
 * when the object does not match its OpenAPI schema (kubernetes-models, the same schemas kubectl's server
 * validates against), and foreground deletion through a `foregroundDeletion` finalizer that the resource's
 * controller removes once the dependents are gone.
 */
import type { ResourceHandler, ResourceRequest } from './fake-kube-api';
import { type KubeStore, StatusError, type StoredObject } from './kube-store';

/** How one resource is served. */
export interface ObjectRouteOptions {
  /** `Job`, `Pod`: the kind of its objects (lists are `<kind>List`). */
  kind: string;
  /** `batch/v1`, `v1`. */
  apiVersion: string;
  /** Throws when the object does not match its schema (kubernetes-models' `new Kind(obj).validate()`). */
  validate?: (obj: object) => void;
  /**
   * Whether a controller owns dependents of these objects: then a Foreground delete only marks the object
   * (deletionTimestamp, finalizer) and the controller deletes it once its dependents are gone.
   */
  hasDependents?: boolean;
}

/** `a=b,c=d` -> a matcher (the equality-based selectors shardwise sends). */
export function labelMatcher(selector: string | null): (obj: StoredObject) => boolean {
  const wanted = (selector ?? '').split(',').filter(Boolean).map((term) => {
    const m = /^([^=!]+)==?(.*)$/.exec(term);
    if (!m) throw new StatusError(400, 'BadRequest', `unable to parse requirement: the fake supports equality selectors only, got "${term}"`);
    return [m[1].trim(), m[2].trim()] as const;
  });
  return (obj) => wanted.every(([k, v]) => (obj.metadata.labels as Record<string, string> | undefined)?.[k] === v);
}

/** The route serving `group`/`resource` objects. */
export function objectRoute(group: string, resource: string, options: ObjectRouteOptions): ResourceHandler {
  return (req: ResourceRequest, store: KubeStore) => {
    const at = { apiGroup: group, resource, namespace: req.namespace };
    const what = `${resource}${group ? `.${group}` : ''}`;
    switch (req.verb) {
      case 'create': {
        const obj = req.body as StoredObject;
        const name = obj?.metadata?.name;
        if (typeof name !== 'string' || name === '') throw new StatusError(422, 'Invalid', `${options.kind} is invalid: metadata.name: Required value: name is required`);
        if (obj.metadata.namespace !== undefined && obj.metadata.namespace !== req.namespace) {
          throw new StatusError(400, 'BadRequest', `the namespace of the provided object (${obj.metadata.namespace}) does not match the namespace sent on the request (${req.namespace})`);
        }
        try {
          options.validate?.(obj);
        } catch (err) {
          throw new StatusError(422, 'Invalid', `${options.kind}.${group || 'core'} "${name}" is invalid: ${(err as Error).message}`);
        }
        if (store.list(at).some((o) => o.metadata.name === name)) throw new StatusError(409, 'AlreadyExists', `${what} "${name}" already exists`);
        return store.put(at, { ...obj, metadata: { ...obj.metadata, creationTimestamp: new Date().toISOString() } });
      }
      case 'get':
        return store.get({ ...at, name: req.name ?? '' });
      case 'list': {
        const items = store.list(at).filter(labelMatcher(req.query.get('labelSelector')));
        return { apiVersion: options.apiVersion, kind: `${options.kind}List`, metadata: {}, items };
      }
      case 'delete': {
        const key = { ...at, name: req.name ?? '' };
        const obj = store.get(key);
        const policy = req.query.get('propagationPolicy') ?? (req.body as { propagationPolicy?: string } | undefined)?.propagationPolicy ?? 'Background';
        if (policy === 'Foreground' && options.hasDependents) {
          if (obj.metadata.deletionTimestamp) return obj;
          return store.update(key, (o) => ({ ...o, metadata: { ...o.metadata, deletionTimestamp: new Date().toISOString(), finalizers: ['foregroundDeletion'] } }));
        }
        store.delete(key);
        return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name: key.name, group, kind: resource } };
      }
      default:
        throw new StatusError(405, 'MethodNotAllowed', `the fake does not serve ${req.verb} on ${what}`);
    }
  };
}
