/**
 * The fake API server's objects: keyed by group, resource, namespace and name, each write bumping a
 * cluster-wide resourceVersion as etcd does, with listeners for controllers.
 */
import { randomUUID } from 'node:crypto';

/** A stored object; metadata.resourceVersion and uid are set by the store. */
export interface StoredObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; resourceVersion?: string; uid?: string; [k: string]: unknown };
  spec?: unknown;
  status?: unknown;
  [field: string]: unknown;
}

/** Which object. */
export interface ObjectKey {
  apiGroup: string;
  resource: string;
  namespace: string;
  name: string;
}

/** An API error with the Kubernetes Status body a real server sends. */
export class StatusError extends Error {
  constructor(readonly code: number, readonly reason: string, message: string) {
    super(message);
    this.name = 'StatusError';
  }

  toStatus(): unknown {
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason, code: this.code };
  }
}

type Listener = (key: ObjectKey, obj: StoredObject, previous: StoredObject | undefined) => void;

/** Objects by key, with optimistic concurrency on writes. */
export class KubeStore {
  private readonly objects = new Map<string, StoredObject>();
  private readonly listeners: Listener[] = [];
  private readonly deleteListeners: Array<(key: ObjectKey, previous: StoredObject) => void> = [];
  private version = 100;

  /** Creates or replaces an object (no precondition); returns the stored copy. */
  put(key: Omit<ObjectKey, 'name'>, obj: StoredObject): StoredObject {
    const full = { ...key, name: obj.metadata.name };
    const previous = this.objects.get(this.id(full));
    const stored = { ...obj, metadata: { ...obj.metadata, namespace: key.namespace, uid: previous?.metadata.uid ?? randomUUID(), resourceVersion: String(++this.version) } };
    this.objects.set(this.id(full), stored);
    for (const l of this.listeners) l(full, stored, previous);
    return stored;
  }

  /** The object, or a 404 in the server's words. */
  get(key: ObjectKey): StoredObject {
    const obj = this.objects.get(this.id(key));
    if (!obj) throw new StatusError(404, 'NotFound', `${key.resource}${key.apiGroup ? `.${key.apiGroup}` : ''} "${key.name}" not found`);
    return obj;
  }

  /**
   * Applies `change` to the object. With `expectedVersion`, a mismatch is the server's 409 Conflict
   * (someone wrote it since the caller read it).
   */
  update(key: ObjectKey, change: (obj: StoredObject) => StoredObject, expectedVersion?: string): StoredObject {
    const current = this.get(key);
    if (expectedVersion !== undefined && expectedVersion !== current.metadata.resourceVersion) {
      throw new StatusError(409, 'Conflict', `Operation cannot be fulfilled on ${key.resource}.${key.apiGroup} "${key.name}": the object has been ` +
        'modified; please apply your changes to the latest version and try again');
    }
    return this.put(key, change(current));
  }

  /** Removes the object and tells the delete listeners; false when there was none. */
  delete(key: ObjectKey): boolean {
    const previous = this.objects.get(this.id(key));
    if (!previous) return false;
    this.objects.delete(this.id(key));
    for (const l of this.deleteListeners) l(key, previous);
    return true;
  }

  /** The objects of one resource in one namespace, in creation order. */
  list(key: Omit<ObjectKey, 'name'>): StoredObject[] {
    const prefix = this.id({ ...key, name: '' });
    return [...this.objects.entries()].filter(([id]) => id.startsWith(prefix)).map(([, obj]) => obj);
  }

  /** Calls `listener` after every delete. */
  onDelete(listener: (key: ObjectKey, previous: StoredObject) => void): void {
    this.deleteListeners.push(listener);
  }

  /** Calls `listener` after every write. */
  onChange(listener: Listener): void {
    this.listeners.push(listener);
  }

  private id(key: ObjectKey): string {
    return `${key.apiGroup}/${key.resource}/${key.namespace}/${key.name}`;
  }
}
