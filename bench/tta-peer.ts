import { exitCodeOf, ManagedChild } from '../launcher';
import { type EpochTime, PEER_SCRIPT, TTA_EPOCHS, TTA_FROZEN_EPOCHS, TTA_SIZE, TTA_WORKERS } from './tta-inputs';

/** Debian's python3 with python3-torch (the Makefile installs it). */
const PYTHON = '/usr/bin/python3';
const STOP_GRACE_MS = 10_000;

/** What the peer reported: its wall time from the start of training, and each epoch. */
export interface PeerResult {
  wallSeconds: number;
  epochs: EpochTime[];
  command: string;
}

interface PeerEpochLine {
  epoch: number;
  frozen: boolean;
  holdout_acc: number;
  elapsed_s: number;
}

/**
 * Runs ../shared/peers/torch_finetune.py with the recipe (`--size 64 --epochs 8 --freeze 3 --world 2`) and
 * shardwise's held-out indices, and reads its JSON lines: one per epoch (cumulative `elapsed_s`), then the
 * summary's `wall_s`. `track` registers its stop for a signal that arrives meanwhile.
 */
export async function runPeer(holdoutFile: string, track: (stop: () => Promise<unknown>) => () => void, output?: (line: string) => void): Promise<PeerResult> {
  const args = [PEER_SCRIPT, '--size', String(TTA_SIZE), '--epochs', String(TTA_EPOCHS), '--freeze', String(TTA_FROZEN_EPOCHS),
    '--world', String(TTA_WORKERS), '--holdout-file', holdoutFile];
  const child = ManagedChild.spawn({ name: 'torch-peer', command: PYTHON, args, onLine: (line) => output?.(`[peer] ${line}`) });
  const untrack = track(() => child.stop({ graceMs: STOP_GRACE_MS }));
  try {
    const code = exitCodeOf(await child.exited);
    if (code !== 0) throw new Error(`${PYTHON} ${args.join(' ')} exited with ${code}:\n${child.tail(30)}`);
    const records = child.lines().filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = records.find((r) => r.summary === true);
    const lines = records.filter((r): r is Record<string, unknown> & PeerEpochLine => typeof r.epoch === 'number');
    if (!summary || typeof summary.wall_s !== 'number' || lines.length !== TTA_EPOCHS) {
      throw new Error(`expected ${TTA_EPOCHS} epoch lines and a summary with wall_s from the peer, got:\n${child.tail(30)}`);
    }
    const epochs = lines.map((l, i) => ({
      epoch: l.epoch,
      frozen: l.frozen,
      top1: l.holdout_acc,
      seconds: l.elapsed_s - (i === 0 ? 0 : lines[i - 1].elapsed_s),
    }));
    return { wallSeconds: summary.wall_s, epochs, command: `${PYTHON} ${args.join(' ')}` };
  } finally {
    await child.stop({ graceMs: STOP_GRACE_MS });
    untrack();
  }
}
