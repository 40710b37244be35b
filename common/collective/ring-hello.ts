import { FrameMeta } from '../wire';
import { RingReduction } from './ring-types';

/**
 * The first frame on a ring connection, sent by the member that connects (the receiving side of the
 * link, so that it gets `connectTensorChannel`'s zero-copy reads) to its previous member. It names the
 * reduction and repeats what both sides must agree on, so a member with a different ring or vector
 * length fails at once with a message saying so instead of timing out or adding the wrong bytes.
 */
export interface RingHello {
  readonly key: string;
  /** Id of the connecting member, which must be the accepting member's next. */
  readonly from: string;
  /** Id the connecting member expects at this address. */
  readonly to: string;
  readonly world: number;
  readonly floats: number;
  /** The connecting member's deadline: nobody holds the connection for longer. */
  readonly timeoutMs: number;
}

const HELLO_TYPE = 'ring-hello';

/** The hello a member sends to its previous member. */
export function helloFor(reduction: RingReduction, floats: number): FrameMeta {
  const { key, members, rank, timeoutMs } = reduction;
  const world = members.length;
  return { type: HELLO_TYPE, key, from: members[rank].id, to: members[(rank - 1 + world) % world].id, world, floats, timeoutMs };
}

/** The hello in a frame's meta, or a description of what is wrong with it. */
export function parseHello(meta: FrameMeta): RingHello | string {
  const { type, key, from, to, world, floats, timeoutMs } = meta;
  if (type !== HELLO_TYPE) return `expected a '${HELLO_TYPE}' frame, got type ${JSON.stringify(type)}`;
  if (typeof key !== 'string' || typeof from !== 'string' || typeof to !== 'string') {
    return `expected string key, from and to, got ${JSON.stringify({ key, from, to })}`;
  }
  if (!Number.isSafeInteger(world) || !Number.isSafeInteger(floats) || typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) {
    return `expected integer world and floats and a timeoutMs, got ${JSON.stringify({ world, floats, timeoutMs })}`;
  }
  return { key, from, to, world: world as number, floats: floats as number, timeoutMs };
}

/** Why `hello` does not fit the local side of `reduction` (whose next member must be its sender), or undefined. */
export function helloMismatch(hello: RingHello, reduction: RingReduction, floats: number): string | undefined {
  const { members, rank } = reduction;
  const world = members.length;
  const next = members[(rank + 1) % world].id;
  if (hello.from !== next) return `expected a connection from the next member '${next}', got one from '${hello.from}' (the members lists differ)`;
  if (hello.to !== members[rank].id) return `'${hello.from}' expected member '${hello.to}' at this address, this is '${members[rank].id}'`;
  if (hello.world !== world) return `expected a ring of ${world} members, '${hello.from}' has ${hello.world}`;
  if (hello.floats !== floats) return `expected ${floats} floats, '${hello.from}' reduces ${hello.floats}`;
  return undefined;
}
