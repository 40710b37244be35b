import { type BusEvent, BusEventType, type ParamGroupName } from '../common';
import { ConfigSyncError } from './errors';

/** The training configuration a worker needs, at one configVersion of the coordinator. */
export interface WorkerConfig {
  version: number;
  /** Frozen groups get no gradients (and a frozen backbone runs BatchNorm in inference mode). */
  frozen: Record<ParamGroupName, boolean>;
  /** Learning rate per group as last announced; only for metrics, the coordinator applies the optimizer. */
  learningRates: Partial<Record<ParamGroupName, number>>;
}

/** Where {@link ConfigSync.ensure} found the configuration an assignment asked for. */
export type ConfigSource = 'current' | 'bus' | 'grpc';

/** Bus events that each move the configuration one version forward. */
type ConfigEvent = Extract<BusEvent, { type: 'freeze' | 'unfreeze' | 'lr-change' }>;

function isConfigEvent(event: BusEvent): event is ConfigEvent {
  return event.type === BusEventType.Freeze || event.type === BusEventType.Unfreeze || event.type === BusEventType.LrChange;
}

/**
 * Keeps the worker's configuration at the version each assignment names. The coordinator bumps
 * configVersion once per decision and announces each bump as one bus event, so the events received
 * since the worker's version, if none is missing, rebuild the new configuration without a call. A gap
 * (an event lost while the bus or the worker was disconnected, or a worker that joined late) is
 * closed with GetConfig. Events only make this fast; the version on the assignment makes it correct.
 */
export class ConfigSync {
  private current: WorkerConfig | undefined;
  private readonly received = new Map<number, ConfigEvent>();

  constructor(private readonly log: (line: string) => void = () => undefined) {}

  /** The configuration in force; undefined until the first GetConfig. */
  get config(): WorkerConfig | undefined {
    return this.current;
  }

  /** Version in force, -1 before the first GetConfig. */
  get version(): number {
    return this.current?.version ?? -1;
  }

  /**
   * Takes a GetConfig answer as the configuration in force, even an older version: after a coordinator
   * restart from a checkpoint the versions start again from the checkpoint's.
   */
  reset(config: WorkerConfig): void {
    this.current = cloneConfig(config);
    this.received.clear();
  }

  /**
   * Takes a configuration the coordinator pushed on the session stream before an order that needs it;
   * an older one than in force is ignored. Returns whether it moved the configuration.
   */
  push(config: WorkerConfig): boolean {
    if (config.version <= this.version) return false;
    this.log(`config v${config.version} pushed on the session stream`);
    this.adopt(config);
    return true;
  }

  /** Keeps a configuration event from the bus until an assignment asks for its version. Other events are ignored. */
  onEvent(event: BusEvent): void {
    if (!isConfigEvent(event) || event.configVersion <= this.version) return;
    this.received.set(event.configVersion, event);
  }

  /**
   * Brings the configuration to `version`: nothing to do when it is there, the received bus events when
   * they cover every version in between, else `fetch` (GetConfig). Returns which it was.
   */
  async ensure(version: number, fetch: () => Promise<WorkerConfig>): Promise<ConfigSource> {
    const current = this.current;
    if (current && current.version >= version) return 'current';
    if (current) {
      const chain: ConfigEvent[] = [];
      for (let v = current.version + 1; v <= version; v++) {
        const event = this.received.get(v);
        if (!event) break;
        chain.push(event);
      }
      if (chain.length === version - current.version) {
        let next = cloneConfig(current);
        for (const event of chain) next = applyEvent(next, event);
        this.adopt(next);
        return 'bus';
      }
    }
    const fetched = await fetch();
    if (fetched.version < version) throw new ConfigSyncError(version, fetched.version);
    if (current) this.log(`config v${version} missed on the bus; fetched over gRPC`);
    if (fetched.version > this.version) this.adopt(fetched);
    return 'grpc';
  }

  private adopt(config: WorkerConfig): void {
    this.current = cloneConfig(config);
    for (const v of [...this.received.keys()]) if (v <= config.version) this.received.delete(v);
  }
}

function applyEvent(config: WorkerConfig, event: ConfigEvent): WorkerConfig {
  const next = cloneConfig(config);
  next.version = event.configVersion;
  switch (event.type) {
    case BusEventType.Freeze:
      next.frozen[event.paramGroup] = true;
      break;
    case BusEventType.Unfreeze:
      next.frozen[event.paramGroup] = false;
      break;
    case BusEventType.LrChange:
      next.learningRates = { ...event.lrByGroup };
      break;
  }
  return next;
}

function cloneConfig(config: WorkerConfig): WorkerConfig {
  return { version: config.version, frozen: { ...config.frozen }, learningRates: { ...config.learningRates } };
}
