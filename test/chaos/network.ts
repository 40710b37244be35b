/**
 * Workers in their own network namespaces, so one can be cut off the network for real. Each worker k gets
 * namespace `<prefix>-k` and a veth pair: `<prefix>hk` (10.231.k.1/30) in this namespace, its peer
 * (10.231.k.2/30) inside, with a default route back here. The host forwards between the pairs, so workers
 * reach each other's data planes, and the coordinator and NATS (bound to 0.0.0.0) are reached at
 * 10.231.0.1, an address on the loopback device so that cutting any worker leaves it up. Subnet:
 * 10.231.0.0/16, on this machine only; one chaos run at a time (namespaces a killed run left behind are
 * removed at the next start). Needs root and iproute2.
 *
 * Cutting worker k sets its host-side link down (both directions drop, as a pulled cable does); healing
 * sets it up again. `dispose` deletes the namespaces (which deletes the pairs) and restores ip_forward,
 * also after a failure.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const FORWARD = '/proc/sys/net/ipv4/ip_forward';

function ip(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`ip ${args.join(' ')} failed: ${stderr || (err as Error).message}`);
  }
}

/** Deletes the namespaces of chaos runs whose process is gone (killed before its cleanup ran). */
function removeStale(): void {
  const names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]);
  for (const name of names) {
    const owner = /^swc(\d+)-\d+$/.exec(name);
    if (!owner) continue;
    try {
      process.kill(Number(owner[1]), 0);
    } catch {
      ip(['netns', 'delete', name]);
    }
  }
}

/** The namespaces of one chaos run. */
export class WorkerNetwork {
  private readonly slots = new Set<number>();
  private readonly forwardBefore: string;

  private constructor(private readonly prefix: string) {
    this.forwardBefore = readFileSync(FORWARD, 'utf8').trim();
    writeFileSync(FORWARD, '1');
    try {
      ip(['addr', 'replace', `${this.hostAddress}/32`, 'dev', 'lo']);
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  /** Sets up forwarding; throws (naming what is missing) when not root or without iproute2. */
  static create(): WorkerNetwork {
    if (process.getuid?.() !== 0) throw new Error('the network fault needs root (network namespaces, veth pairs)');
    ip(['-V']);
    removeStale();
    // Interface names have at most 15 characters: swc<pid>h<k>.
    return new WorkerNetwork(`swc${process.pid}`);
  }

  /** The address this namespace's processes are reached at from every worker namespace. */
  get hostAddress(): string {
    return '10.231.0.1';
  }

  /** Namespace and address of worker slot `k` (1-based), created on first use. */
  slot(k: number): { namespace: string; address: string } {
    if (k < 1 || k > 250) throw new Error(`worker slot ${k}: expected 1-250`);
    const namespace = `${this.prefix}-${k}`;
    if (!this.slots.has(k)) {
      const host = `${this.prefix}h${k}`;
      const inner = `${this.prefix}w${k}`;
      ip(['netns', 'add', namespace]);
      this.slots.add(k);
      ip(['link', 'add', host, 'type', 'veth', 'peer', 'name', inner]);
      ip(['link', 'set', inner, 'netns', namespace]);
      ip(['addr', 'add', `10.231.${k}.1/30`, 'dev', host]);
      ip(['link', 'set', host, 'up']);
      ip(['-n', namespace, 'addr', 'add', `10.231.${k}.2/30`, 'dev', inner]);
      ip(['-n', namespace, 'link', 'set', inner, 'up']);
      ip(['-n', namespace, 'link', 'set', 'lo', 'up']);
      ip(['-n', namespace, 'route', 'add', 'default', 'via', `10.231.${k}.1`]);
    }
    return { namespace, address: `10.231.${k}.2` };
  }

  /** The command prefix that runs a program inside slot `k`'s namespace. */
  exec(k: number): string[] {
    return ['ip', 'netns', 'exec', this.slot(k).namespace];
  }

  /** Cuts slot `k` off the network (its host-side link goes down). */
  cut(k: number): void {
    ip(['link', 'set', `${this.prefix}h${k}`, 'down']);
  }

  /** Reconnects slot `k`: the link comes up (new connections pass again a moment later; workers retry). */
  heal(k: number): void {
    ip(['link', 'set', `${this.prefix}h${k}`, 'up']);
  }

  /** Deletes every namespace (and with it each veth pair) and restores ip_forward. Never throws. */
  dispose(): void {
    for (const k of this.slots) {
      try {
        ip(['netns', 'delete', `${this.prefix}-${k}`]);
      } catch {
        // Already gone.
      }
    }
    this.slots.clear();
    try {
      ip(['addr', 'del', `${this.hostAddress}/32`, 'dev', 'lo']);
    } catch {
      // Already gone.
    }
    writeFileSync(FORWARD, this.forwardBefore);
  }
}
