/**
 * Kubernetes RBAC as the API server evaluates it, for the Role/RoleBinding kinds: a request is allowed
 * when a rule of a Role bound to its user matches the request's API group, resource (with subresource:
 * `statefulsets/scale`), verb and, where the rule lists resourceNames, the object's name. Everything
 * else is denied (RBAC has no deny rules).
 */

/** One rule of a Role, as rendered. */
export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}

/** The attributes the API server authorizes a resource request by. */
export interface RequestAttributes {
  user: string;
  verb: string;
  apiGroup: string;
  namespace: string;
  /** `pods`, `statefulsets`. */
  resource: string;
  /** `scale`, `status`, or undefined for the object itself. */
  subresource?: string;
  /** Undefined for list, watch and create. */
  name?: string;
}

interface RenderedObject {
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  rules?: PolicyRule[];
  roleRef?: { kind: string; name: string };
  subjects?: Array<{ kind: string; name: string; namespace?: string }>;
}

/** The user name a ServiceAccount's token authenticates as. */
export function serviceAccountUser(namespace: string, name: string): string {
  return `system:serviceaccount:${namespace}:${name}`;
}

function matches(list: readonly string[] | undefined, value: string): boolean {
  return (list ?? []).some((item) => item === '*' || item === value);
}

/** Whether `rule` allows the request (resourceNames restrict only requests that name an object). */
export function ruleAllows(rule: PolicyRule, attrs: RequestAttributes): boolean {
  const resource = attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource;
  if (!matches(rule.apiGroups, attrs.apiGroup) || !matches(rule.resources, resource) || !matches(rule.verbs, attrs.verb)) return false;
  if (rule.resourceNames && rule.resourceNames.length > 0) return attrs.name !== undefined && rule.resourceNames.includes(attrs.name);
  return true;
}

/** The Roles and RoleBindings of a rendered chart, evaluated per request. */
export class RbacPolicy {
  private readonly roles = new Map<string, PolicyRule[]>();
  private readonly bindings: RenderedObject[] = [];

  /** Takes the Role and RoleBinding objects out of `objects` (other kinds are ignored). */
  constructor(objects: readonly unknown[], private readonly defaultNamespace: string) {
    for (const raw of objects) {
      const obj = raw as RenderedObject;
      const ns = obj.metadata?.namespace ?? defaultNamespace;
      if (obj.kind === 'Role') this.roles.set(`${ns}/${obj.metadata?.name}`, obj.rules ?? []);
      if (obj.kind === 'RoleBinding') this.bindings.push(obj);
    }
  }

  /** Number of Roles found: a test asserts the chart rendered any. */
  get roleCount(): number {
    return this.roles.size;
  }

  /** The rules granted to `user` in `namespace`. */
  rulesFor(user: string, namespace: string): PolicyRule[] {
    const rules: PolicyRule[] = [];
    for (const b of this.bindings) {
      const ns = b.metadata?.namespace ?? this.defaultNamespace;
      if (ns !== namespace || b.roleRef?.kind !== 'Role') continue;
      const bound = (b.subjects ?? []).some((s) =>
        (s.kind === 'ServiceAccount' && serviceAccountUser(s.namespace ?? ns, s.name) === user) || (s.kind === 'User' && s.name === user));
      if (bound) rules.push(...(this.roles.get(`${ns}/${b.roleRef.name}`) ?? []));
    }
    return rules;
  }

  /** Whether RBAC allows the request. */
  allows(attrs: RequestAttributes): boolean {
    return this.rulesFor(attrs.user, attrs.namespace).some((rule) => ruleAllows(rule, attrs));
  }
}

/** The API server's 403 message, word for word in its format. */
export function forbiddenMessage(attrs: RequestAttributes): string {
  const groupSuffix = attrs.apiGroup ? `.${attrs.apiGroup}` : '';
  const resource = attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource;
  const subject = attrs.name !== undefined ? `${attrs.resource}${groupSuffix} "${attrs.name}"` : `${attrs.resource}${groupSuffix}`;
  return `${subject} is forbidden: User "${attrs.user}" cannot ${attrs.verb} resource "${resource}" in API group "${attrs.apiGroup}" ` +
    `in the namespace "${attrs.namespace}"`;
}
