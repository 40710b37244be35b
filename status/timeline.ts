import * as path from 'node:path';
import type { MetricsRecord } from '../common';
import type { StatusEvent } from './status-types';

/** What the timeline needs of one worker's membership record (the coordinator's `WorkerRecord` fits). */
export interface WorkerView {
  id: string;
  incarnation: number;
  state: string;
  lastHeartbeatMs: number;
  failureReason?: string;
}

/** States in which a worker incarnation is still part of the job. */
const LIVE = new Set(['joining', 'active', 'draining']);

/** `{backbone: 0.001, head: 0.01}` -> `backbone 1e-3, head 1e-2`. */
function formatRates(lr: Record<string, number>): string {
  return Object.entries(lr).map(([group, rate]) => `${group} ${rate.toExponential(1).replace('.0e', 'e')}`).join(', ');
}

/**
 * The job's story as a list of events, built from what can be read without touching the job: the
 * records `metrics.jsonl` gains (freeze, unfreeze, learning-rate changes, the exactly-once reports), the
 * membership list compared with the previous look (joins, leaves, failures), the checkpoint folders that
 * appear, and the coordinator's lifecycle state. Entries are only appended.
 */
export class Timeline {
  readonly events: StatusEvent[] = [];
  private readonly workers = new Map<string, { incarnation: number; state: string }>();
  private readonly checkpoints = new Set<string>();
  private state: string | undefined;

  /** Adds the events among newly read records; `atMs` null marks records from before a resume. */
  onRecords(records: readonly MetricsRecord[], atMs: number | null): void {
    for (const r of records) {
      const add = (kind: StatusEvent['kind'], text: string): void => {
        this.events.push({ kind, atMs, epoch: 'epoch' in r ? r.epoch : undefined, text });
      };
      if (r.type === 'freeze') add('freeze', `backbone frozen from epoch ${r.epoch + 1}`);
      else if (r.type === 'unfreeze') add('unfreeze', `backbone unfrozen from epoch ${r.epoch + 1}`);
      else if (r.type === 'lr-change') add('lr-change', `learning rate ${formatRates(r.lr)}`);
      else if (r.type === 'epoch-report' && !r.exactlyOnce) {
        add('failure', `epoch ${r.epoch + 1}: ${r.missing.length} samples not counted exactly once`);
      }
    }
  }

  /** Compares the membership list with the previous one and adds joins, leaves and failures. */
  onWorkers(list: readonly WorkerView[], atMs: number): void {
    for (const w of list) {
      const seen = this.workers.get(w.id);
      if (seen && seen.incarnation === w.incarnation && seen.state === w.state) continue;
      if (seen && seen.incarnation !== w.incarnation && LIVE.has(seen.state)) {
        // Re-registered while still live: the coordinator failed the old incarnation.
        this.add('failure', atMs, `${w.id} (incarnation ${seen.incarnation}) replaced by a restart`);
      }
      if (!seen || seen.incarnation !== w.incarnation) {
        this.add('join', atMs, `${w.id} joined${w.incarnation > 1 ? ` (incarnation ${w.incarnation})` : ''}`);
      }
      if (w.state === 'left') this.add('leave', atMs, `${w.id} left`);
      if (w.state === 'failed') this.add('failure', atMs, `${w.id} failed${w.failureReason ? `: ${w.failureReason}` : ''}`);
      this.workers.set(w.id, { incarnation: w.incarnation, state: w.state });
    }
  }

  /** Adds a checkpoint event for each folder not seen before (older ones are pruned; that is no event). */
  onCheckpoints(folders: readonly string[], atMs: number): void {
    // Listed newest first; the oldest new one goes first into the timeline.
    for (const folder of [...folders].reverse()) {
      if (this.checkpoints.has(folder)) continue;
      this.checkpoints.add(folder);
      this.add('checkpoint', atMs, `checkpoint ${path.basename(folder)}`);
    }
  }

  /** Adds an event when the coordinator's lifecycle state changed. */
  onState(state: string, atMs: number): void {
    if (state === this.state) return;
    this.state = state;
    this.add('state', atMs, `job ${state}`);
  }

  private add(kind: StatusEvent['kind'], atMs: number, text: string): void {
    this.events.push({ kind, atMs, text });
  }
}
