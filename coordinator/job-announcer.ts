import {
  type BusEvent,
  type BusLrChangeReason,
  type EventBus,
  type JobState,
  type LrChangeEvent,
  LrChangeReason,
  type ScheduledEvent,
} from '../common';

/** The bus's word for each trainer reason of a learning-rate change. */
const BUS_LR_REASON: Record<LrChangeReason, BusLrChangeReason> = {
  [LrChangeReason.Unfreeze]: 'unfreeze',
  [LrChangeReason.StepDecay]: 'schedule',
  [LrChangeReason.Plateau]: 'plateau',
};

/** The bus event announcing a trainer decision (freeze, unfreeze, lr-change) that takes effect at `effectiveStep`. */
export function busEventFor(
  event: ScheduledEvent | LrChangeEvent,
  jobId: string,
  configVersion: number,
  effectiveStep: number,
): BusEvent {
  const base = { jobId, configVersion, effectiveStep };
  switch (event.type) {
    case 'freeze':
      return { type: 'freeze', paramGroup: event.group, ...base };
    case 'unfreeze':
      return { type: 'unfreeze', paramGroup: event.group, ...base };
    case 'lr-change':
      return { type: 'lr-change', lrByGroup: { ...event.lr }, reason: BUS_LR_REASON[event.reason], ...base };
  }
}

/**
 * Publishes job events on NATS when there is a bus, and only logs them when there is none. Publishing
 * never blocks or fails training: the bus is at most once, and the config_version stamped on every
 * assignment is what keeps workers correct (a worker that missed an event calls GetConfig).
 */
export class JobAnnouncer {
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly bus: EventBus | null,
    readonly jobId: string,
    private readonly log: (line: string) => void,
  ) {}

  /** Sends `event` after the ones before it (order matters to workers); a failure is logged. */
  announce(event: BusEvent): void {
    if (this.bus === null) return;
    const bus = this.bus;
    this.pending = this.pending.then(() =>
      bus.publish(event).catch((err: unknown) => {
        const why = err instanceof Error ? err.message : String(err);
        this.log(`bus: ${event.type} event (config v${event.configVersion}) not confirmed: ${why}`);
      }),
    );
  }

  /** Announces a lifecycle move of the job. */
  jobState(state: JobState, configVersion: number, effectiveStep: number): void {
    this.announce({ type: 'job-state', state, jobId: this.jobId, configVersion, effectiveStep });
  }

  /** Waits for the events already handed over, then closes the bus connection. */
  async close(): Promise<void> {
    await this.pending;
    await this.bus?.close();
  }
}
