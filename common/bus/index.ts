/**
 * The job's event bus: typed freeze/unfreeze, learning-rate, scale and job-state events between the
 * coordinator and its workers over core NATS (at most once; configVersion on step assignments is what
 * keeps training correct, the bus only makes changes arrive fast).
 */
export {
  BusEventType,
  CONFIG_EVENT_TYPES,
  checkEventShape,
  decodeEventJson,
  JOB_ID_PATTERN,
  JOB_STATES,
  LR_CHANGE_REASONS,
  busEventSchema,
  encodeEvent,
  eventSubject,
  parseEvent,
  validateEvent,
  type BusEvent,
  type FreezeEvent as BusFreezeEvent,
  type JobState,
  type JobStateEvent,
  type LrChangeEvent as BusLrChangeEvent,
  type LrChangeReason as BusLrChangeReason,
  type ScaleEvent,
  type UnfreezeEvent as BusUnfreezeEvent,
} from './events';
export {
  EventBus,
  EventSubscription,
  type BusStatusInfo,
  type EventHandler,
  type SubscriptionStats,
} from './event-bus';
export {
  BUS_ROLES,
  busPermissions,
  makeNatsCredentials,
  natsAuthorization,
  readNatsCredentials,
  writeNatsCredentials,
  type BusRole,
  type NatsCredentials,
} from './access';
export { canonicalEventBytes, deriveBusKey, eventSignature, signEvent, signatureMatches } from './event-signing';
export {
  EventVerifier,
  UNVERIFIED_REASONS,
  UnverifiedEventError,
  type EventVerifierOptions,
  type UnverifiedReason,
} from './event-verifier';
export { compileEventBusOptions, type CompiledEventBusOptions, type EventBusOptions } from './event-bus-options';
export {
  EventBusConnectError,
  EventBusError,
  EventHandlerError,
  EventPublishError,
  EventValidationError,
  PublishFailure,
} from './errors';
