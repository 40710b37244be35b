import { createHash, timingSafeEqual } from 'node:crypto';

/** Call metadata carrying the join token on Register. */
export const JOIN_TOKEN_METADATA_KEY = 'shardwise-join-token';

const digest = (bytes: Buffer): Buffer => createHash('sha256').update(bytes).digest();

/**
 * Whether `presented` is the job's token, in constant time: both are hashed first, so neither the
 * comparison nor an early length check tells a caller how much of its guess was right.
 */
export function joinTokenMatches(expected: Buffer, presented: string | Buffer | undefined): boolean {
  if (presented === undefined) return false;
  return timingSafeEqual(digest(expected), digest(Buffer.from(presented)));
}
