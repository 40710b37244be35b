import { FrameMeta } from '../wire';
import { AllreducePhase } from './errors';
import { ReductionPlan } from './segment-plan';
import { AllreduceMember } from './types';

/**
 * The control frames of the collective. Every connection is opened by the member that RECEIVES on it (so
 * its reads land straight in the destination arrays, `connectTensorChannel`'s zero-copy path), and is
 * pooled for later reductions. The receiver says on it, once, who it is (hello), then per reduction that it
 * is ready for it (ready): the sender sends a reduction's data only after the receiver's ready for that
 * key, so data never arrives before a reduction started at its receiver, and the sender checks there that
 * both agree on the members and the vector length before a byte of data moves.
 */
export type ControlFrame =
  | { readonly type: 'hello'; readonly from: string; readonly address: string; readonly to: string }
  | { readonly type: 'ready'; readonly key: string; readonly floats: number; readonly members: string };

/** The hello frame's meta: `me` (as listed in the members, address included) connected to `peer`. */
export function helloMeta(me: AllreduceMember, peer: AllreduceMember): FrameMeta {
  return { type: 'allreduce-hello', from: me.id, address: me.address, to: peer.id };
}

/** The ready frame's meta for reduction `key` as this member plans it. */
export function readyMeta(key: string, plan: ReductionPlan): FrameMeta {
  return { type: 'allreduce-ready', key, floats: plan.floats, members: plan.membersText };
}

/** The control frame in a frame's meta, or a description of what is wrong with it. */
export function parseControl(meta: FrameMeta): ControlFrame | string {
  const { type, from, address, to, key, floats, members } = meta;
  if (type === 'allreduce-hello') {
    if (typeof from === 'string' && typeof address === 'string' && typeof to === 'string') return { type: 'hello', from, address, to };
    return `expected string from, address and to in a hello, got ${JSON.stringify(meta)}`;
  }
  if (type === 'allreduce-ready') {
    if (typeof key === 'string' && Number.isSafeInteger(floats) && typeof members === 'string') return { type: 'ready', key, floats: floats as number, members };
    return `expected string key and members and integer floats in a ready, got ${JSON.stringify(meta)}`;
  }
  return `expected an 'allreduce-hello' or 'allreduce-ready' frame, got type ${JSON.stringify(type)}`;
}

/** Why receiver `peer`'s ready does not fit this member's plan, or undefined. */
export function readyMismatch(ready: Extract<ControlFrame, { type: 'ready' }>, plan: ReductionPlan, peer: string): string | undefined {
  if (ready.floats !== plan.floats) return `expected ${plan.floats} floats, '${peer}' reduces ${ready.floats}`;
  if (ready.members !== plan.membersText) return `the members lists differ: expected [${plan.membersText}], '${peer}' has [${ready.members}]`;
  return undefined;
}

/**
 * The one tensor of a data frame: its name says all both sides must agree on, so the receiver, which
 * checks it against the frame it expects before reading a byte of payload, never adds a wrong frame.
 */
export function frameName(phase: AllreducePhase, key: string, segment: number, plan: ReductionPlan, world: number, part?: number): string {
  const which = part === undefined ? '' : ` part ${part}`;
  return `${phase} segment ${segment}/${plan.segments}${which} of '${key}' (${plan.floats} floats, ${world} members)`;
}
