import { randomUUID } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { Augmenter, PARAM_GROUPS, type ReadyState, type WorkerMetrics } from '../common';
import { BusListener } from './bus-listener';
import { type CallPolicy, callWithRetry } from './call-policy';
import type { ConfigSync, WorkerConfig } from './config-sync';
import type { CoordinatorLink, OrderStream, PendingAnswer, PushedOrder } from './coordinator-link';
import { WorkerError } from './errors';
import { type HeartbeatReport, HeartbeatTimer } from './heartbeat';
import type { CompiledWorkerOptions } from './options';
import { type Registration, asIncompatible, registerWorker } from './registration';
import { Replica } from './replica';
import type { ComputedShare } from './share-runner';

/** What a session needs from the worker that owns it. */
export interface SessionDeps {
  options: CompiledWorkerOptions;
  link: CoordinatorLink;
  metrics: WorkerMetrics;
  configSync: ConfigSync;
  /** The tfjs backend the worker computes on, for the capabilities. */
  backend: string;
  log: (line: string) => void;
  /** The worker's state as heartbeats report it (everything but the id and incarnation). */
  heartbeatState: () => Omit<HeartbeatReport, 'workerId' | 'incarnation'>;
  /** A heartbeat answer asked the worker to drain. */
  onDrainRequested: (reason: string) => void;
  /** A heartbeat answer named an allreduce attempt that failed on the coordinator. */
  onAllreduceVoided: (key: string) => void;
  /** host:port of the worker's allreduce data plane; undefined: it has none. */
  dataAddress?: string;
}

/** The part of a SessionReady the step loop knows; the session adds who it is and its config version. */
export type ReadyProgress = Pick<ReadyState, 'lastCompletedStep' | 'weightsVersion' | 'maxWaitMs' | 'reducedKey'>;

/**
 * The worker's membership in a job: the registration, the replica built from the job's model, the
 * configuration, the bus subscription and the heartbeat. `join()` sets all of it up, and again after a
 * coordinator forgot the worker (it restarted): the replica is kept when the model is the same, so a
 * re-registration costs one GetWeights, not a rebuild.
 */
export class Session {
  /** Sent with every registration: tells this worker's re-registration from another process under its id. */
  readonly processId = randomUUID();
  private reg: Registration | undefined;
  private model: Replica | undefined;
  private augment: Augmenter | undefined;
  private bus: BusListener | undefined;
  private heartbeat: HeartbeatTimer | undefined;
  private heartbeatFailing = false;
  /** The Session stream of the current registration; undefined before join() and once it ended. */
  private orders: OrderStream | undefined;
  /** Tensors held after joining: a share must leave the count where it found it. */
  tensorBaseline: number | undefined;

  constructor(private readonly deps: SessionDeps) {}

  /** The id the coordinator knows this worker by (the requested one until registered). */
  get id(): string {
    return this.reg?.workerId ?? this.deps.options.id;
  }

  /** The current registration; throws before the first `join()`. */
  get registration(): Registration {
    if (!this.reg) throw new WorkerError('not registered yet: join() first');
    return this.reg;
  }

  /** The replica; throws before the first `join()`. */
  get replica(): Replica {
    if (!this.model) throw new WorkerError('no model yet: join() first');
    return this.model;
  }

  /** The augmenter of the job's data spec; throws before the first `join()`. */
  get augmenter(): Augmenter {
    if (!this.augment) throw new WorkerError('no job yet: join() first');
    return this.augment;
  }

  /** Whether the worker is registered (it may have been forgotten since). */
  get registered(): boolean {
    return this.reg !== undefined;
  }

  /** Registers (again), builds the model if the job's model differs, then bus, config, weights, heartbeat. */
  async join(signal: AbortSignal): Promise<void> {
    const { deps } = this;
    const capabilities = {
      workerId: this.id,
      processId: this.processId,
      backend: deps.backend,
      maxMessageBytes: deps.options.maxMessageBytes,
      architecture: this.model?.parts.spec.architecture,
      modelFingerprint: this.model?.fingerprint,
      dataAddress: deps.dataAddress,
    };
    const reg = await registerWorker(deps.link, capabilities, { ...this.policy(signal), idInUseWaitMs: deps.options.idInUseWaitMs });
    deps.log(`registered as ${reg.workerId} with coordinator ${deps.options.coordinator} ` +
      `(job ${reg.jobId}, step ${reg.globalStep}, config v${reg.configVersion})`);
    if (!this.model || JSON.stringify(this.model.parts.spec) !== JSON.stringify(reg.spec.model)) {
      if (this.model) {
        deps.log('the job\'s model changed since the last registration; building the new one');
        this.model.dispose();
        this.model = undefined;
      }
      this.model = await Replica.build(reg.spec);
      deps.log(`built ${reg.spec.model.architecture}: ${this.model.variableNames.length} variables, ${this.model.fingerprint}`);
    }
    this.reg = reg;
    this.augment = new Augmenter(reg.spec.data.augment);
    this.connectBus(reg);
    deps.configSync.reset(await this.fetchConfig(signal));
    this.updateConfigMetrics();
    await this.loadWeights(signal);
    this.startHeartbeat(reg);
    this.orders?.close();
    this.orders = deps.link.openSession();
    this.tensorBaseline = tf.memory().numTensors;
  }

  /**
   * Tells the coordinator the worker is ready and waits for its next order (see OrderStream.next); a
   * configuration pushed with it is taken at once. A failure ends the session: join() again.
   */
  async nextOrder(state: ReadyProgress): Promise<PushedOrder> {
    const pushed = await this.stream().next(this.ready(state));
    if (pushed.config && this.deps.configSync.push(pushed.config)) this.updateConfigMetrics();
    return pushed;
  }

  /**
   * Hands a held share's header to the coordinator on the session stream, with the SessionReady for the
   * next order in the same message (see OrderStream.pushHeld); resolves once it was accepted.
   * @throws RpcError with the refusal's status; a failure to reach the coordinator ends the session.
   */
  async pushHeld(share: ComputedShare, state: ReadyProgress): Promise<void> {
    await this.stream().pushHeld(this.registration.workerId, share, this.ready(state));
  }

  /**
   * Hands a held share's header to the coordinator without waiting for its answer (see OrderStream.sendHeld),
   * which a later read settles.
   */
  sendHeld(share: ComputedShare, state: ReadyProgress): Promise<PendingAnswer> {
    return this.stream().sendHeld(this.registration.workerId, share, this.ready(state));
  }

  /** Reads on until `answer` is in (see OrderStream.settle); throws a refusal. */
  settle(answer: PendingAnswer): Promise<void> {
    return this.stream().settle(answer);
  }

  /** Whether the last order stands for the next ready: the next order comes without one. */
  get orderComing(): boolean {
    return this.orders?.orderComing ?? false;
  }

  private stream(): OrderStream {
    const orders = this.orders;
    if (!orders) throw new WorkerError('no session stream: join() first');
    return orders;
  }

  private ready(state: ReadyProgress): ReadyState {
    const reg = this.registration;
    return {
      workerId: reg.workerId,
      incarnation: reg.incarnation,
      lastCompletedStep: state.lastCompletedStep,
      configVersion: Math.max(0, this.deps.configSync.version),
      weightsVersion: Math.max(0, state.weightsVersion),
      maxWaitMs: state.maxWaitMs,
      reducedKey: state.reducedKey,
    };
  }

  /**
   * Ends the session stream: the coordinator drops this incarnation and takes back what it held, so the
   * caller must drop its held sums too and join() again.
   */
  endSession(): void {
    this.orders?.close();
    this.orders = undefined;
  }

  /** Whether this worker takes part in allreduces: the job asks for them and it has a data plane. */
  get joinsAllreduce(): boolean {
    return this.registration.spec.distributed.exchange === 'allreduce' && this.deps.dataAddress !== undefined;
  }

  /**
   * GetWeights into the replica (with the optimizer state when the worker replays allreduce updates); a
   * model the coordinator refuses is IncompatibleCoordinatorError.
   */
  async loadWeights(signal: AbortSignal): Promise<void> {
    const { workerId } = this.registration;
    const replica = this.replica;
    const withOptimizer = this.joinsAllreduce;
    let weights;
    try {
      weights = await this.call('Coordinator/GetWeights', (s) => this.deps.link.fetchWeights(workerId, replica.fingerprint, s, withOptimizer), true, signal);
    } catch (err) {
      throw asIncompatible(err, this.deps.options.coordinator);
    }
    replica.loadFull(weights.tensors, weights.globalStep, weights.optimizer);
    this.deps.log(`loaded the coordinator's weights v${weights.globalStep} (${weights.tensors.size} tensors` +
      `${weights.optimizer ? ', optimizer state included' : ''})`);
  }

  /** Brings the configuration to `version` (bus events, else GetConfig). */
  async syncConfig(version: number, signal: AbortSignal): Promise<void> {
    const source = await this.deps.configSync.ensure(version, () => this.fetchConfig(signal));
    if (source !== 'current') this.updateConfigMetrics();
  }

  /** One call under the retry policy (UNAVAILABLE waited out up to the retry limit, then CoordinatorUnreachableError). */
  call<T>(method: string, attempt: (signal: AbortSignal) => Promise<T>, idempotent: boolean, signal: AbortSignal): Promise<T> {
    return callWithRetry(method, () => attempt(signal), { ...this.policy(signal), idempotent });
  }

  /**
   * Tells the coordinator at once (Leave with drain), so it plans no further share for this worker while
   * the current one finishes; one attempt, since the final Leave after the share says the same.
   */
  announceDrain(reason: string): void {
    if (!this.reg) return;
    this.deps.link.leave({ workerId: this.reg.workerId, incarnation: this.reg.incarnation, drain: true, reason }).catch((err: unknown) => {
      this.deps.log(`Leave (drain) was not answered (${messageOf(err)}); leaving after the share anyway`);
    });
  }

  /** Stops the heartbeat and says goodbye with one short call; a coordinator that is gone or forgot us already is no error. */
  async leave(reason: string): Promise<void> {
    await this.heartbeat?.stop();
    if (!this.reg) return;
    try {
      await this.deps.link.leave({ workerId: this.reg.workerId, incarnation: this.reg.incarnation, drain: false, reason });
      this.deps.log(`left the job (${reason})`);
    } catch (err) {
      // After STOP the coordinator may well have exited already: the Leave is a courtesy, not a need.
      this.deps.log(`Leave was not answered (${messageOf(err)}); leaving anyway`);
    } finally {
      this.endSession();
    }
  }

  /** Stops the heartbeat, the session stream and the bus and frees the model. */
  async close(): Promise<void> {
    await this.heartbeat?.stop();
    this.endSession();
    await this.bus?.close();
    this.model?.dispose();
  }

  private async fetchConfig(signal: AbortSignal): Promise<WorkerConfig> {
    const { workerId } = this.registration;
    return this.call('Coordinator/GetConfig', (s) => this.deps.link.getConfig(workerId, s), true, signal);
  }

  private updateConfigMetrics(): void {
    const config = this.deps.configSync.config;
    if (!config) return;
    const m = this.deps.metrics;
    m.configVersion.set(config.version);
    for (const group of PARAM_GROUPS) {
      m.frozen.set({ group }, config.frozen[group] ? 1 : 0);
      const lr = config.learningRates[group];
      if (lr !== undefined) m.learningRate.set({ group }, lr);
    }
  }

  private connectBus(reg: Registration): void {
    if (this.bus && (this.bus.url !== reg.natsUrl || this.bus.jobId !== reg.jobId)) {
      void this.bus.close();
      this.bus = undefined;
    }
    if (!reg.natsUrl || this.bus) return;
    const { deps } = this;
    this.bus = new BusListener({
      url: reg.natsUrl,
      jobId: reg.jobId,
      name: `worker-${reg.workerId}`,
      credentials: deps.options.natsCredentials,
      joinToken: deps.options.tls?.joinToken,
      versionInForce: () => deps.configSync.version,
      onEvent: (event) => deps.configSync.onEvent(event),
      // Events were lost while disconnected; the next assignment's config version catches that, so
      // only log here rather than race the step loop with a GetConfig of our own.
      onReconnect: () => deps.log('event bus reconnected; a missed configuration change is fetched when an assignment needs it'),
      metrics: deps.metrics,
      log: deps.log,
    });
  }

  private startHeartbeat(reg: Registration): void {
    void this.heartbeat?.stop();
    const { deps } = this;
    this.heartbeat = new HeartbeatTimer({
      intervalMs: reg.heartbeatIntervalMs,
      send: (request, deadlineMs) => deps.link.heartbeat(request, deadlineMs),
      snapshot: () => ({ workerId: this.id, incarnation: reg.incarnation, ...deps.heartbeatState() }),
      onResponse: (response) => {
        if (this.heartbeatFailing) deps.log('heartbeats answered again');
        this.heartbeatFailing = false;
        if (response.drain) deps.onDrainRequested('the coordinator asked this worker to drain');
        if (response.voidedAllreduce) deps.onAllreduceVoided(response.voidedAllreduce);
      },
      onError: (err) => {
        if (!this.heartbeatFailing) deps.log(`heartbeat failed: ${messageOf(err)}`);
        this.heartbeatFailing = true;
      },
    });
    this.heartbeat.start();
  }

  private policy(signal: AbortSignal): CallPolicy {
    let logged = false;
    const { options, log } = this.deps;
    return {
      target: options.coordinator,
      retryLimitMs: options.retryLimitMs,
      signal,
      onRetry: (err) => {
        if (logged) return;
        logged = true;
        log(`${err.method}: ${err.codeName}; retrying with backoff for up to ${Math.round(options.retryLimitMs / 1000)} s`);
      },
    };
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
