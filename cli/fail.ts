import { ShardwiseError } from '../common';

/** Exit status for a problem the user can fix (bad input, missing file). */
export const EXIT_USAGE = 2;
/** Exit status for an unexpected failure. */
export const EXIT_FAILURE = 1;

/**
 * Reports an error the way a person can act on it: our own errors as their message alone (they name the
 * problem), anything else as its message with the stack only when SHARDWISE_DEBUG is set.
 */
export function reportAndExit(err: unknown, stream: NodeJS.WritableStream = process.stderr): never {
  const debug = Boolean(process.env.SHARDWISE_DEBUG);
  if (err instanceof ShardwiseError) {
    stream.write(`shardwise: ${err.message}\n`);
    if (debug && err.stack) stream.write(`${err.stack}\n`);
    process.exit(EXIT_USAGE);
  }
  const message = err instanceof Error ? err.message : String(err);
  stream.write(`shardwise: unexpected error: ${message}\n`);
  if (debug && err instanceof Error && err.stack) stream.write(`${err.stack}\n`);
  else stream.write('shardwise: set SHARDWISE_DEBUG=1 to see the stack trace\n');
  process.exit(EXIT_FAILURE);
}
