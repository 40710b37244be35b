/**
 * The codebase's one retry policy (on cockatiel): which failures are retried is named by each caller,
 * how long to wait is decided here. See retry-policy.ts.
 */
export { compileBackoff, loadCockatiel, retryTransient, type BackoffOptions, type CockatielModule, type RetryOptions } from './retry-policy';
export { BackoffSequence } from './backoff-sequence';
