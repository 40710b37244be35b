import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors';
import { eventSubject } from './events';

/**
 * Who connects to a job's NATS server. Only the coordinator may publish the job's control events (freeze,
 * learning rate, scale, job state); workers and the launcher may only listen. A forged `scale` to 0 or a
 * flood of `freeze` events from anything that can reach the server is then refused by the server itself.
 */
export const BUS_ROLES = ['coordinator', 'worker', 'launcher'] as const;
/** One of `BUS_ROLES`. */
export type BusRole = (typeof BUS_ROLES)[number];

/** A NATS user and password (the server's `authorization.users` entry of one role). */
export interface NatsCredentials {
  user: string;
  password: string;
}

const credentialsSchema = z.strictObject({ user: z.string().min(1), password: z.string().min(16) });

/** Reads a credentials file (`{"user": ..., "password": ...}`, e.g. mounted from a Secret). */
export function readNatsCredentials(file: string): NatsCredentials {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('natsCredentials', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError('natsCredentials', `${file}: expected JSON {"user": ..., "password": ...}`, { cause: err });
  }
  const result = credentialsSchema.safeParse(parsed);
  if (!result.success) {
    const fields = result.error.issues.map((i) => i.path.join('.') || i.message).join(', ');
    throw new ConfigError('natsCredentials', `${file}: expected {"user": ..., "password": (16 characters or more)}, wrong: ${fields}`);
  }
  return result.data;
}

/** Fresh random credentials for every role of one job (a local cluster makes them at each start). */
export function makeNatsCredentials(): Record<BusRole, NatsCredentials> {
  const make = (user: BusRole): NatsCredentials => ({ user, password: randomBytes(24).toString('base64url') });
  return { coordinator: make('coordinator'), worker: make('worker'), launcher: make('launcher') };
}

/** Writes a credentials file readable by its owner only. */
export function writeNatsCredentials(file: string, credentials: NatsCredentials): void {
  fs.writeFileSync(file, `${JSON.stringify(credentials)}\n`, { mode: 0o600 });
}

/** What a role may publish and subscribe to, on `jobId`'s subjects, in nats-server's terms. */
export function busPermissions(role: BusRole, jobId: string): { publish: Record<string, string[]>; subscribe: Record<string, string[]> } {
  const events = eventSubject(jobId);
  if (role === 'coordinator') return { publish: { allow: [events] }, subscribe: { allow: [events, '_INBOX.>'] } };
  return { publish: { deny: ['>'] }, subscribe: { allow: [events] } };
}

/**
 * The `authorization` block of a nats-server configuration for one job: one user per role with its
 * permissions. nats-server reads JSON as its configuration syntax, so this is plain JSON.
 */
export function natsAuthorization(jobId: string, credentials: Record<BusRole, NatsCredentials>): string {
  const users = BUS_ROLES.map((role) => ({ ...credentials[role], permissions: busPermissions(role, jobId) }));
  return JSON.stringify({ authorization: { users } }, null, 2);
}
