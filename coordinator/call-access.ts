import type { Metadata, ServiceError } from '@grpc/grpc-js';
import {
  type AuthContextSource,
  callIdentity,
  type Identity,
  identityUri,
  JOIN_TOKEN_METADATA_KEY,
  joinTokenMatches,
  PermissionDeniedError,
  type Role,
  type TlsCredentials,
  toServiceError,
  UnauthenticatedError,
} from '../common';

/*
 * Who may make which Coordinator call. With mutual TLS every call comes on a connection whose client
 * certificate names an identity (common/security); a worker's certificate may make the worker calls, and
 * only for the worker id it names; an operator's may call Scale. Register also needs the job's join token.
 * Refusals name what is missing and nothing else: no job id, spec, NATS URL or fingerprint.
 */

/** The role each call needs. */
export const CALL_ROLES = {
  register: 'worker',
  getConfig: 'worker',
  heartbeat: 'worker',
  leave: 'worker',
  getWeights: 'worker',
  session: 'worker',
  pushGradients: 'worker',
  submitEval: 'worker',
  scale: 'operator',
} as const satisfies Record<string, Role>;

/** A Coordinator method, as its handler is named. */
export type CoordinatorMethod = keyof typeof CALL_ROLES;

/** A call as the checks see it: its connection's certificate and its metadata. */
type Call = AuthContextSource & { metadata: Metadata };

/**
 * The coordinator's access checks. Without TLS credentials (`--insecure`) every check passes: the
 * coordinator then trusts its network, as it did before.
 */
export class CallAccess {
  constructor(private readonly tls?: TlsCredentials) {}

  /** Whether calls are checked at all. */
  get secured(): boolean {
    return this.tls !== undefined;
  }

  /** The caller's identity, which must hold the role `method` needs; throws what the status says. */
  authorize(call: AuthContextSource, method: CoordinatorMethod): Identity | undefined {
    if (!this.tls) return undefined;
    const identity = callIdentity(call);
    if (!identity) {
      throw new UnauthenticatedError(`${method}: expected a client certificate naming a shardwise identity (spiffe://shardwise/<role>/<name>), got none`);
    }
    const role: Role = CALL_ROLES[method];
    if (identity.role !== role) {
      throw new PermissionDeniedError(`${method}: needs ${role === 'operator' ? 'an' : 'a'} ${role} certificate, the caller presented ${identityUri(identity)}`);
    }
    return identity;
  }

  /** A worker speaks only for the id its certificate names (two processes cannot share an id without sharing a key). */
  bindWorker(call: AuthContextSource, workerId: string): void {
    if (!this.tls) return;
    const identity = callIdentity(call);
    if (identity?.role !== 'worker' || identity.name !== workerId) {
      const holder = identity ? identityUri(identity) : 'no certificate';
      throw new PermissionDeniedError(`worker_id '${workerId}' is not the id of the caller's certificate (${holder}); a worker registers under the id its certificate names`);
    }
  }

  /** Register: the job's join token, compared in constant time, must be in the call's metadata. */
  checkJoinToken(call: Call): void {
    const expected = this.tls?.joinToken;
    if (!expected) return;
    const values = call.metadata.get(JOIN_TOKEN_METADATA_KEY);
    if (values.length === 0) {
      throw new UnauthenticatedError(`Register: expected a join token in the '${JOIN_TOKEN_METADATA_KEY}' metadata (the --tls-dir join-token file), got none`);
    }
    if (values.length !== 1 || !joinTokenMatches(expected, values[0])) {
      throw new UnauthenticatedError('Register: the join token is wrong (expected the one in the --tls-dir join-token file of this job)');
    }
  }
}

type AnyHandler = (call: AuthContextSource & { emit(event: 'error', err: unknown): boolean }, callback?: (err: Partial<ServiceError>) => void) => void;

/**
 * The service with every handler refusing, before it runs, a caller whose certificate lacks the call's
 * role: unary and client-streaming calls through their callback, streaming ones with an 'error' status.
 * Generic in the service's type, so that only the adapter (coordinator-service.ts) names the generated one.
 */
export function guardedService<S extends Record<CoordinatorMethod, unknown>>(service: S, access: CallAccess): S {
  if (!access.secured) return service;
  const guarded: Record<string, AnyHandler> = {};
  for (const [method, handler] of Object.entries(service) as [CoordinatorMethod, AnyHandler][]) {
    guarded[method] = (call, callback) => {
      try {
        access.authorize(call, method);
      } catch (err) {
        if (callback) callback(toServiceError(err));
        else call.emit('error', toServiceError(err));
        return;
      }
      handler(call, callback);
    };
  }
  return guarded as unknown as S;
}
