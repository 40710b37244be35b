import { createHash } from 'node:crypto';
import { EventBusError } from './errors';
import { canonicalEventBytes, signatureMatches } from './event-signing';
import { type BusEvent, CONFIG_EVENT_TYPES, checkEventShape, eventSubject } from './events';

/**
 * Why an event could not be verified:
 * - `unsigned`: it carries no signature (in an `--insecure` job, which has no key: every event, taken anyway);
 * - `bad-signature`: its signature is not the job's key's (the publisher lacks the join token);
 * - `other-job`: it names another job than the subject's;
 * - `stale`: a replay of a configuration event already taken, at or below the version in force.
 */
export const UNVERIFIED_REASONS = ['unsigned', 'bad-signature', 'other-job', 'stale'] as const;
/** One of `UNVERIFIED_REASONS`. */
export type UnverifiedReason = (typeof UNVERIFIED_REASONS)[number];

/** Configuration events remembered to recognise a replay; a job makes a few dozen at most. */
const REMEMBERED_EVENTS = 256;

/** An event that could not be verified: dropped, or (`accepted`, an `--insecure` job) taken unverified. */
export class UnverifiedEventError extends EventBusError {
  readonly reason: UnverifiedReason;
  readonly eventType: string;
  readonly configVersion: number;
  /** True when the event was handed on anyway (a job without a key cannot verify anything). */
  readonly accepted: boolean;
  constructor(subject: string, reason: UnverifiedReason, event: BusEvent, why: string, accepted = false) {
    super(subject, `${accepted ? 'took' : 'dropped'} a '${event.type}' event (config v${event.configVersion}) on ${subject}: ${why}`);
    this.name = 'UnverifiedEventError';
    this.reason = reason;
    this.eventType = event.type;
    this.configVersion = event.configVersion;
    this.accepted = accepted;
  }
}

/** What an `EventVerifier` checks against, and whom it tells. */
export interface EventVerifierOptions {
  /** The job whose subject is listened to. */
  jobId: string;
  /** The job's bus key (`deriveBusKey`); undefined in an `--insecure` job: events are taken unsigned. */
  key: Buffer | undefined;
  /** The configuration version in force here (-1 before the first); a replay at or below it is `stale`. */
  versionInForce: () => number;
  /** Each event not verified, and whether it is the first of its reason (log that one, count them all). */
  onUnverified: (error: UnverifiedEventError, first: boolean) => void;
}

/**
 * Decides which received events a process may act on (`EventBus.subscribe`'s `verifier`). It checks the
 * shape, then the job, then the signature, then replays. A replay is told from a genuine late event by
 * content: a late event was never taken, so it goes on to the configuration, which ignores it as old;
 * only a second copy of one already taken is `stale`. A replay of a version not yet in force repeats
 * what the coordinator said for that version (the signature covers the content), so it is harmless.
 */
export class EventVerifier {
  private readonly subject: string;
  private readonly taken = new Map<number, string>();
  private readonly reported = new Set<UnverifiedReason>();
  private lastInForce = -1;

  constructor(private readonly options: EventVerifierOptions) {
    this.subject = eventSubject(options.jobId);
  }

  /**
   * The event to act on, or undefined when it was dropped (and reported). A message that is not an event
   * at all throws `EventValidationError`, as without a verifier.
   */
  verify(value: unknown): BusEvent | undefined {
    const { jobId, key } = this.options;
    const event = checkEventShape(value, jobId);
    if (event.jobId !== jobId) return this.drop('other-job', event, `it is for job '${event.jobId}', not '${jobId}'`);
    if (key === undefined) {
      this.report(new UnverifiedEventError(this.subject, 'unsigned', event, 'this process has no join token (--insecure), ' +
        'so any client allowed to publish on the subject can change the job\'s configuration here', true));
    } else if (event.signature === undefined) {
      return this.drop('unsigned', event, 'it carries no signature, and this job signs every event');
    } else if (!signatureMatches(value as object, key)) {
      return this.drop('bad-signature', event, "its signature is not the job's (the publisher does not hold the join token)");
    }
    if (!CONFIG_EVENT_TYPES.includes(event.type)) return event;
    const inForce = this.options.versionInForce();
    // Versions only go down when the coordinator restarted from a checkpoint: they count up again from there.
    if (inForce < this.lastInForce) this.taken.clear();
    this.lastInForce = inForce;
    const digest = createHash('sha256').update(canonicalEventBytes(value as object)).digest('base64url');
    if (event.configVersion <= inForce && this.taken.get(event.configVersion) === digest) {
      return this.drop('stale', event, `a replay of an event already taken, at or below config v${inForce} in force`);
    }
    this.taken.set(event.configVersion, digest);
    if (this.taken.size > REMEMBERED_EVENTS) this.taken.delete(this.taken.keys().next().value as number);
    return event;
  }

  private drop(reason: UnverifiedReason, event: BusEvent, why: string): undefined {
    this.report(new UnverifiedEventError(this.subject, reason, event, why));
    return undefined;
  }

  private report(error: UnverifiedEventError): void {
    const first = !this.reported.has(error.reason);
    this.reported.add(error.reason);
    this.options.onUnverified(error, first);
  }
}
