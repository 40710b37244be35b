/**
 * The job's membership in one module: `WorkerRoster` (roster.ts) registers, drains, loses (lease or
 * deadline), lets leave and scales workers, and hands a lost worker's share to the others; `Membership`
 * (registry.ts) is the registry of member states and incarnations it keeps.
 */
export {
  Membership,
  MemberState,
  compileMembershipOptions,
  type CompiledMembershipOptions,
  type MembershipOptions,
  type MembershipCounters,
  type Registration,
  type SenderCheck,
  type WorkerRecord,
} from './registry';
export { stepPhaseOf, WorkerRoster, type MembershipHost, type Round, type WorkerCapabilitiesInput, type WorkerSession } from './roster';
