/**
 * A Kubernetes API server for tests, speaking real HTTP to the real client library. It enforces what a
 * real one would for the calls shardwise makes: bearer-token authentication (401), RBAC from the chart's
 * rendered Roles (403), PATCH content types (415), merge-patch semantics with resourceVersion
 * preconditions (409), unknown objects (404). Every request is recorded for assertions.
 *
 * Resources are served generically (`/api/v1/...` and `/apis/<group>/<version>/...`), so further kinds
 * (Jobs, for the sweep) are added with {@link FakeKubeApi.serve}; StatefulSets and their `scale`
 * subresource are built in.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { forbiddenMessage, type RbacPolicy, type RequestAttributes } from './rbac';
import { KubeStore, StatusError, type StoredObject } from './kube-store';

/** One request as the server saw it. */
export interface RecordedRequest extends RequestAttributes {
  method: string;
  path: string;
  contentType: string | undefined;
  body: unknown;
  status: number;
}

/** A parsed resource request handed to a route. */
export interface ResourceRequest extends RequestAttributes {
  method: string;
  contentType: string | undefined;
  body: unknown;
  /** The URL's query (labelSelector, propagationPolicy). */
  query: URLSearchParams;
}

/** Serves one resource (`group/resource[/subresource]`); returns the response body or throws a StatusError. */
export type ResourceHandler = (req: ResourceRequest, store: KubeStore) => unknown;

/** Content types a real API server accepts on PATCH; anything else is 415. */
const PATCH_TYPES = ['application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/json-patch+json', 'application/apply-patch+yaml'];

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}

/** `/apis/apps/v1/namespaces/ns/statefulsets/name/scale` -> its parts; undefined for a path outside the API. */
export function parseApiPath(pathname: string): { apiGroup: string; namespace: string; resource: string; name?: string; subresource?: string } | undefined {
  const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(pathname);
  if (!m) return undefined;
  return { apiGroup: m[1] ?? '', namespace: m[2], resource: m[3], name: m[4], subresource: m[5] };
}

function verbOf(method: string, hasName: boolean, watch: boolean): string {
  switch (method) {
    case 'GET': return hasName ? 'get' : watch ? 'watch' : 'list';
    case 'PATCH': return 'patch';
    case 'PUT': return 'update';
    case 'POST': return 'create';
    case 'DELETE': return hasName ? 'delete' : 'deletecollection';
    default: return method.toLowerCase();
  }
}

/** The fake API server. */
export class FakeKubeApi {
  /** Every request, in arrival order. */
  readonly requests: RecordedRequest[] = [];
  readonly store = new KubeStore();
  private readonly routes = new Map<string, ResourceHandler>();
  private readonly requestListeners: Array<(request: RecordedRequest) => void> = [];

  private constructor(
    private readonly server: http.Server,
    private readonly tokens: ReadonlyMap<string, string>,
    private policy: RbacPolicy,
  ) {
    this.serve('apps', 'statefulsets', 'scale', (req, store) => scaleHandler(req, store));
  }

  /**
   * Starts on 127.0.0.1:<free port>. `tokens` maps bearer tokens to user names. With `tls` it serves
   * HTTPS with that certificate, as a real API server does (clients then verify it against their CA).
   */
  static async start(options: { policy: RbacPolicy; tokens: Record<string, string>; tls?: { cert: string; key: string } }): Promise<FakeKubeApi> {
    const server = options.tls ? https.createServer(options.tls) : http.createServer();
    const api = new FakeKubeApi(server, new Map(Object.entries(options.tokens)), options.policy);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => void api.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return api;
  }

  /** `http(s)://127.0.0.1:<port>`. */
  get url(): string {
    const scheme = this.server instanceof https.Server ? 'https' : 'http';
    return `${scheme}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Replaces the RBAC policy (a test revokes a rule by rendering a different Role). */
  setPolicy(policy: RbacPolicy): void {
    this.policy = policy;
  }

  /** Serves `group`/`resource`[/`subresource`] with `handler` (authorization happens before it). */
  serve(group: string, resource: string, subresource: string | undefined, handler: ResourceHandler): void {
    this.routes.set(`${group}/${resource}/${subresource ?? ''}`, handler);
  }

  /** The recorded requests on `resource[/subresource]` with `verb`. */
  requestsFor(verb: string, resource: string): RecordedRequest[] {
    return this.requests.filter((r) => r.verb === verb && (r.subresource ? `${r.resource}/${r.subresource}` : r.resource) === resource);
  }

  /**
   * Calls `listener` after each request is answered, before the next is read: a test makes another writer
   * change an object between a client's read and its write (a real 409).
   */
  onRequest(listener: (request: RecordedRequest) => void): void {
    this.requestListeners.push(listener);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const text = await readBody(req);
    const contentType = req.headers['content-type']?.split(';')[0].trim();
    const parsed = parseApiPath(url.pathname);
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const user = token !== undefined ? this.tokens.get(token) : undefined;
    const attrs: RequestAttributes = {
      user: user ?? 'system:anonymous',
      verb: verbOf(req.method ?? 'GET', parsed?.name !== undefined, url.searchParams.get('watch') === 'true'),
      apiGroup: parsed?.apiGroup ?? '',
      namespace: parsed?.namespace ?? '',
      resource: parsed?.resource ?? url.pathname,
      subresource: parsed?.subresource,
      name: parsed?.name,
    };
    let body: unknown = text;
    let status = 200;
    let answer: unknown;
    try {
      if (user === undefined) throw new StatusError(401, 'Unauthorized', 'Unauthorized');
      if (!parsed) throw new StatusError(404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
      if (!this.policy.allows(attrs)) throw new StatusError(403, 'Forbidden', forbiddenMessage(attrs));
      if (req.method === 'PATCH' && !PATCH_TYPES.includes(contentType ?? '')) {
        throw new StatusError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${PATCH_TYPES.join(', ')}`);
      }
      if (text) {
        try {
          body = JSON.parse(text);
        } catch {
          throw new StatusError(400, 'BadRequest', `the request body is not JSON: ${text.slice(0, 80)}`);
        }
      }
      const handler = this.routes.get(`${attrs.apiGroup}/${attrs.resource}/${attrs.subresource ?? ''}`);
      if (!handler) throw new StatusError(404, 'NotFound', `the fake API server does not serve ${attrs.resource}${attrs.subresource ? `/${attrs.subresource}` : ''}`);
      answer = handler({ ...attrs, method: req.method ?? 'GET', contentType, body, query: url.searchParams }, this.store);
    } catch (err) {
      if (!(err instanceof StatusError)) throw err;
      status = err.code;
      answer = err.toStatus();
    }
    const recorded: RecordedRequest = { ...attrs, method: req.method ?? 'GET', path: url.pathname, contentType, body, status };
    this.requests.push(recorded);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer));
    for (const listener of this.requestListeners) listener(recorded);
  }
}

/** The `scale` subresource of a StatefulSet: GET reads it, PATCH changes spec.replicas (with a resourceVersion precondition). */
function scaleHandler(req: ResourceRequest, store: KubeStore): unknown {
  const key = { apiGroup: 'apps', resource: 'statefulsets', namespace: req.namespace, name: req.name ?? '' };
  const sts = store.get(key);
  if (req.verb === 'patch') {
    const patch = mergePatchBody(req);
    const wanted = patch.spec?.replicas;
    if (!Number.isInteger(wanted) || (wanted as number) < 0) {
      throw new StatusError(422, 'Invalid', `Scale.apps "${key.name}" is invalid: spec.replicas: Invalid value: ${JSON.stringify(wanted)}: must be a non-negative integer`);
    }
    const expected = patch.metadata?.resourceVersion;
    const updated = store.update(key, (obj) => ({ ...obj, spec: { ...(obj.spec as object), replicas: wanted } }), expected);
    return scaleOf(updated);
  }
  if (req.verb === 'get') return scaleOf(sts);
  throw new StatusError(405, 'MethodNotAllowed', `${req.verb} is not supported on statefulsets/scale`);
}

function mergePatchBody(req: ResourceRequest): { spec?: { replicas?: unknown }; metadata?: { resourceVersion?: string } } {
  if (req.contentType === 'application/json-patch+json' || req.contentType === 'application/apply-patch+yaml') {
    // A real server would apply these; shardwise never sends them, so the fake refuses them in the server's words.
    const why = Array.isArray(req.body) ? 'the fake applies merge patches only' : 'json: cannot unmarshal object into Go value of type jsonpatch.Patch';
    throw new StatusError(400, 'BadRequest', why);
  }
  if (req.body === null || typeof req.body !== 'object' || Array.isArray(req.body)) throw new StatusError(400, 'BadRequest', 'a merge patch must be a JSON object');
  return req.body as { spec?: { replicas?: unknown }; metadata?: { resourceVersion?: string } };
}

/** The autoscaling/v1 Scale view of a StatefulSet. */
export function scaleOf(sts: StoredObject): unknown {
  const spec = sts.spec as { replicas?: number };
  const status = (sts.status ?? {}) as { replicas?: number };
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: { name: sts.metadata.name, namespace: sts.metadata.namespace, resourceVersion: sts.metadata.resourceVersion, uid: sts.metadata.uid },
    spec: { replicas: spec.replicas ?? 1 },
    status: { replicas: status.replicas ?? 0, selector: '' },
  };
}
