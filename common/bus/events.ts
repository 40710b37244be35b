import { z } from 'zod';
import { PARAM_GROUPS } from '../job';
import { EventValidationError } from './errors';
import { SIGNATURE_CHARS } from './event-signing';

/**
 * The events the coordinator publishes to its workers. Each is a discriminated union member on `type`;
 * the zod schemas below are the single source of both the TypeScript types and the check on receive.
 *
 * Every event carries `jobId`, a monotonic `configVersion` (the version of the training configuration
 * the event produces) and `effectiveStep` (the global step from which it applies). A worker applies an
 * event when it reaches that step, so a change lands on the same step everywhere however late the event
 * arrives, as long as it arrives before that step.
 */

/** The `type` of each event (an `as const` object rather than an enum, as nats.js does for `Events`). */
export const BusEventType = {
  Freeze: 'freeze',
  Unfreeze: 'unfreeze',
  LrChange: 'lr-change',
  Scale: 'scale',
  JobState: 'job-state',
} as const;
export type BusEventType = (typeof BusEventType)[keyof typeof BusEventType];

/**
 * The events that each produce a new configuration version; the others (scale, job state) carry the
 * version in force when they were sent.
 */
export const CONFIG_EVENT_TYPES: readonly BusEventType[] = [BusEventType.Freeze, BusEventType.Unfreeze, BusEventType.LrChange];

/** Why the learning rates changed: the schedule, a plateau reduction, or the backbone unfreeze. */
export const LR_CHANGE_REASONS = ['schedule', 'plateau', 'unfreeze'] as const;
export type LrChangeReason = (typeof LR_CHANGE_REASONS)[number];

/** The lifecycle of a job as the coordinator announces it. */
export const JOB_STATES = ['starting', 'running', 'draining', 'stopped', 'failed'] as const;
export type JobState = (typeof JOB_STATES)[number];

/** A job id is one NATS subject token, so it can sit inside `shardwise.<jobId>.events`. */
export const JOB_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** The subject a job's events travel on. */
export function eventSubject(jobId: string): string {
  return `shardwise.${jobId}.events`;
}

const step = z.number().int().nonnegative();

// Fields every event has. Objects are not strict on purpose: a newer coordinator may add a field and an
// older worker should still act on the fields it knows (tolerant reader); unknown `type`s are rejected.
const base = {
  jobId: z.string().regex(JOB_ID_PATTERN, 'must be one NATS subject token (letters, digits, _ and -)'),
  configVersion: step,
  effectiveStep: step,
  // HMAC-SHA256 of the rest of the event under the job's bus key (event-signing.ts); absent in an
  // --insecure job, which has no join token to derive a key from.
  signature: z.string().regex(new RegExp(`^[A-Za-z0-9_-]{${SIGNATURE_CHARS}}$`), `expected ${SIGNATURE_CHARS} base64url characters (an HMAC-SHA256)`).optional(),
};

const paramGroup = z.enum(PARAM_GROUPS);

const freezeEventSchema = z.object({ type: z.literal(BusEventType.Freeze), paramGroup, ...base });
const unfreezeEventSchema = z.object({ type: z.literal(BusEventType.Unfreeze), paramGroup, ...base });
const lrChangeEventSchema = z.object({
  type: z.literal(BusEventType.LrChange),
  // A record over an enum requires every group, so a worker never has to guess a missing rate.
  lrByGroup: z.record(paramGroup, z.number().nonnegative().finite()),
  reason: z.enum(LR_CHANGE_REASONS),
  ...base,
});
const scaleEventSchema = z.object({
  type: z.literal(BusEventType.Scale),
  desiredWorkers: z.number().int().nonnegative(),
  ...base,
});
const jobStateEventSchema = z.object({ type: z.literal(BusEventType.JobState), state: z.enum(JOB_STATES), ...base });

/** Schema of any bus event; `parseEvent` and `validateEvent` use it on receive and on publish. */
export const busEventSchema = z.discriminatedUnion('type', [
  freezeEventSchema,
  unfreezeEventSchema,
  lrChangeEventSchema,
  scaleEventSchema,
  jobStateEventSchema,
]);

/** From `effectiveStep` on, the group's weights stop updating (and its BatchNorm runs in inference mode). */
export type FreezeEvent = z.infer<typeof freezeEventSchema>;
/** From `effectiveStep` on, the group's weights train again. */
export type UnfreezeEvent = z.infer<typeof unfreezeEventSchema>;
/** From `effectiveStep` on, each group uses the given learning rate. */
export type LrChangeEvent = z.infer<typeof lrChangeEventSchema>;
/** The coordinator wants this many workers (the operator or autoscaler acts on it). */
export type ScaleEvent = z.infer<typeof scaleEventSchema>;
/** The job moved to a new lifecycle state. */
export type JobStateEvent = z.infer<typeof jobStateEventSchema>;
/** Any event on the bus; switch on `type` to narrow it. */
export type BusEvent = z.infer<typeof busEventSchema>;

/** How many characters of a bad message go into the error, enough to recognise it in a log. */
const PREVIEW_CHARS = 200;

function preview(text: string): string {
  return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}...` : text;
}

/**
 * Checks that a value has the shape of an event; returns it typed, or throws `EventValidationError` naming
 * every problem. The job it names is not checked: `validateEvent` and `EventVerifier` do that.
 */
export function checkEventShape(value: unknown, jobId: string): BusEvent {
  const result = busEventSchema.safeParse(value);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(message)'}: ${i.message}`);
    throw new EventValidationError(eventSubject(jobId), problems, preview(safeStringify(value)), { cause: result.error });
  }
  return result.data;
}

/**
 * Checks that a value is a valid event of job `jobId`; returns it typed, or throws `EventValidationError`
 * naming every problem. Used before publishing so a bad event fails at its source, not on every worker.
 */
export function validateEvent(value: unknown, jobId: string): BusEvent {
  const event = checkEventShape(value, jobId);
  if (event.jobId !== jobId) {
    throw new EventValidationError(
      eventSubject(jobId),
      [`jobId: expected '${jobId}', event has '${event.jobId}'`],
      preview(safeStringify(value)),
    );
  }
  return event;
}

/** Decodes a raw message as UTF-8 JSON, unchecked; not JSON is an `EventValidationError`. */
export function decodeEventJson(data: Uint8Array, jobId: string): unknown {
  const text = new TextDecoder().decode(data);
  try {
    return JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new EventValidationError(eventSubject(jobId), [`expected JSON, ${why}`], preview(text), { cause: err });
  }
}

/** Decodes a raw message (UTF-8 JSON) and validates it with `validateEvent`. */
export function parseEvent(data: Uint8Array, jobId: string): BusEvent {
  return validateEvent(decodeEventJson(data, jobId), jobId);
}

/** Encodes an event as UTF-8 JSON, the wire format `parseEvent` reads. */
export function encodeEvent(event: BusEvent): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(event));
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
