import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/**
 * Events bound to their job. NATS permissions already keep every user but the coordinator's from
 * publishing; a signature also refuses an event from anything that holds the coordinator's NATS password
 * without the job's join token (a leaked Secret, a misconfigured server, another job's coordinator). The
 * coordinator signs each event with HMAC-SHA256 under a key both sides derive from the join token they
 * already hold and the job id, so the key itself never travels.
 */

/** Bytes of the bus key (HMAC-SHA256's block-sized key would be 64; 32 is the hash's own strength). */
const BUS_KEY_BYTES = 32;
/** HKDF salt: fixed, it only separates this use of the token from any other. */
const BUS_KEY_SALT = 'shardwise event bus';
/** Length of a signature on the wire: 32 bytes as base64url without padding. */
export const SIGNATURE_CHARS = 43;

/**
 * The job's bus key: HKDF-SHA256 of the join token, with the job id in `info` so that another job that
 * shares a token (one `shardwise certs` folder used twice) still cannot speak on this job's bus.
 */
export function deriveBusKey(joinToken: Buffer, jobId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', joinToken, BUS_KEY_SALT, `shardwise bus key v1 job=${jobId}`, BUS_KEY_BYTES));
}

/**
 * The bytes a signature covers: the event as JSON with its keys sorted at every level and without its
 * `signature` field. Computed on the message as received, before the schema drops fields it does not
 * know, so an event a newer coordinator extended still verifies on an older worker.
 */
export function canonicalEventBytes(event: object): Buffer {
  const signed: Record<string, unknown> = { ...event };
  delete signed.signature;
  return Buffer.from(JSON.stringify(signed, (_key, value: unknown) =>
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : value), 'utf8');
}

/** The signature of `event` under `key`: HMAC-SHA256 of its canonical bytes, base64url. */
export function eventSignature(event: object, key: Buffer): string {
  return createHmac('sha256', key).update(canonicalEventBytes(event)).digest('base64url');
}

/** `event` with its `signature` set (any signature it carried is replaced). */
export function signEvent<T extends object>(event: T, key: Buffer): T & { signature: string } {
  return { ...event, signature: eventSignature(event, key) };
}

/** Whether `event`'s `signature` is the one `key` makes, compared in constant time. */
export function signatureMatches(event: object, key: Buffer): boolean {
  const { signature } = event as { signature?: unknown };
  if (typeof signature !== 'string') return false;
  const presented = Buffer.from(signature, 'base64url');
  const expected = Buffer.from(eventSignature(event, key), 'base64url');
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}
