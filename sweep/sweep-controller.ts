/**
 * The sweep loop. Trials advance in trial order, each step one of: take over epochs its fork donor has
 * finished, take an early-stopping decision at a rung, finish, or run its next stretch (to the next rung)
 * as a child process. State is written after every change, so a sweep stopped at any point (SIGINT,
 * SIGKILL, a power cut) continues where the state file says; a trial's epochs count only once their
 * checkpoint exists, so a continued trial restarts from its last checkpoint.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decideAtRung, type Objective, rungsFor } from './early-stopping';
import { FailureBudgetError, SweepStateError } from './errors';
import type { TrialExecutor, TrialRun } from './executor';
import { LocalExecutor } from './local-executor';
import { createSearch } from './search';
import type { SweepSpec } from './sweep-spec';
import { SweepLock } from './sweep-lock';
import { emptyState, isTerminal, readSweepState, type SweepState, type TrialRecord, writeSweepState } from './sweep-state';
import { createTrial, TrainCounts } from './trial-planner';

/** How to run a sweep. */
export interface RunSweepOptions {
  /** CIFAR-10 folder for every trial (`--data`). @default each job's data.dir, CIFAR10_DIR, then download */
  dataDir?: string;
  /** Compute backend of the trials. */
  backend?: string;
  /** Aborting stops the running trials (they resume from their last checkpoint next time) and returns. */
  signal?: AbortSignal;
  /** Called after every change of the state (the live table). */
  onChange?: (state: SweepState, live: ReadonlyMap<string, { epoch: number; step: number }>) => void;
  /** How often running trials' run folders are read. @default 500 */
  pollMs?: number;
  /**
   * Where trials run, made once the sweep's lock is held (a Kubernetes executor deletes the Jobs an earlier,
   * killed run of this sweep left, which must never be a running one's). @default a {@link LocalExecutor}
   * on the spec's `executor.cores`
   */
  executor?: () => Promise<TrialExecutor>;
}

/** How a sweep call ended. */
export interface SweepOutcome {
  state: SweepState;
  /** True when the call was interrupted (the sweep is not finished; run it again to continue). */
  interrupted: boolean;
}

/** Runs (or continues) the sweep `spec`, holding its lock throughout. */
export async function runSweep(spec: SweepSpec, options: RunSweepOptions = {}): Promise<SweepOutcome> {
  fs.mkdirSync(spec.dir, { recursive: true });
  const lock = SweepLock.acquire(spec.dir);
  try {
    const state = readSweepState(spec.dir) ?? emptyState(spec.name, spec.hash);
    if (state.specHash !== spec.hash) {
      throw new SweepStateError(path.join(spec.dir, 'sweep-state.json'), `was written by a different sweep spec (hash ${state.specHash}, ` +
        `${spec.source} has ${spec.hash}); give the changed sweep a new name, or delete ${spec.dir} to start over`);
    }
    const executor = options.executor ? await options.executor() : new LocalExecutor(spec.cores);
    try {
      return await new SweepLoop(spec, state, options, executor).run();
    } finally {
      await executor.close();
    }
  } finally {
    lock.release();
  }
}

class SweepLoop {
  private readonly objective: Objective;
  private readonly search;
  private readonly counts: TrainCounts;
  private readonly running = new Map<string, TrialRun>();
  private wake: () => void = () => undefined;

  constructor(private readonly spec: SweepSpec, private readonly state: SweepState, private readonly options: RunSweepOptions,
    private readonly executor: TrialExecutor) {
    this.objective = spec.objective;
    this.search = createSearch(spec.algorithm, spec.parameters);
    this.counts = new TrainCounts(options.dataDir);
    // Trials that were running when the last sweep process ended continue from their last checkpoint.
    for (const t of state.trials) if (t.state === 'running') t.state = 'pending';
  }

  async run(): Promise<SweepOutcome> {
    const { signal } = this.options;
    const onAbort = (): void => this.wake();
    signal?.addEventListener('abort', onAbort);
    try {
      this.checkFailureBudget('(from the earlier run of this sweep)');
      while (!signal?.aborted) {
        await this.createTrials();
        this.advanceAll();
        await this.startRuns();
        this.save();
        if (this.running.size === 0) {
          const open = this.state.trials.filter((t) => !isTerminal(t));
          if (open.length === 0 && !(await this.canCreate())) break;
          if (open.length > 0) {
            throw new SweepStateError(this.spec.dir, `no trial can progress: ${open.map((t) => `${t.id} (${t.state})`).join(', ')} wait with nothing running`);
          }
          continue;
        }
        await this.waitForChange();
        this.collect();
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      await this.stopAll();
      this.save();
    }
    const interrupted = signal?.aborted === true;
    if (!interrupted) {
      this.state.finished = true;
      this.save();
    }
    return { state: this.state, interrupted };
  }

  private async canCreate(): Promise<boolean> {
    return this.state.trials.length < this.spec.budget.maxTrials && this.state.stopReason === undefined;
  }

  // Grid and random search propose every trial at once; TPE proposes one when a slot is free, so it
  // learns from as many finished trials as possible.
  private async createTrials(): Promise<void> {
    const lazy = this.spec.algorithm.type === 'tpe';
    while (this.state.trials.length < this.spec.budget.maxTrials) {
      if (lazy && this.state.trials.filter((t) => !isTerminal(t)).length >= this.slots()) return;
      const trial = await createTrial(this.spec, this.search, this.state.trials, this.counts, this.objective);
      if (trial === null) return;
      this.state.trials.push(trial);
    }
  }

  private slots(): number {
    return Math.min(this.spec.budget.maxConcurrentTrials ?? Infinity, this.executor.capacity);
  }

  private advanceAll(): void {
    for (const trial of this.state.trials) {
      if (!isTerminal(trial)) this.advance(trial);
    }
  }

  /** Moves one trial as far as it can go without running anything. */
  private advance(t: TrialRecord): void {
    for (;;) {
      if (t.fork !== null && t.results.length < t.fork.epochs && !this.running.has(t.id)) {
        const donor = this.trial(t.fork.from);
        const n = t.results.length;
        if (donor.results.length > n) {
          for (let k = n; k < Math.min(donor.results.length, t.fork.epochs); k++) {
            t.results.push({ ...donor.results[k] });
            t.checkpoints[k + 1] = donor.checkpoints[k + 1];
          }
        } else if (isTerminal(donor)) {
          // The donor ended before the fork point: this trial trains the rest itself.
          t.fork = n > 0 ? { from: donor.id, epochs: n } : null;
        } else {
          return; // waits for the donor
        }
        continue;
      }
      const rung = rungsFor(this.spec.earlyStopping, t.epochs).find((r) => r <= t.results.length && !t.decisions.some((d) => d.rung === r));
      if (rung !== undefined) {
        const decision = decideAtRung(this.spec.earlyStopping, this.objective, t, this.state.trials, rung);
        if (decision === null) return;
        t.decisions.push(decision);
        if (decision.action === 'stop') {
          t.results = t.results.slice(0, rung);
          t.state = 'stopped';
          this.running.get(t.id)?.cancel();
          return;
        }
        continue;
      }
      if (t.results.length >= t.epochs && !this.running.has(t.id)) t.state = 'completed';
      return;
    }
  }

  private async startRuns(): Promise<void> {
    let used = [...this.running.values()].reduce((n, r) => n + this.executor.cost(r.request.workers), 0);
    for (const t of this.state.trials) {
      if (t.state !== 'pending' || this.running.has(t.id) || !this.readyToRun(t)) continue;
      const need = this.executor.cost(t.workers);
      if (this.running.size >= (this.spec.budget.maxConcurrentTrials ?? Infinity)) return;
      if (this.running.size > 0 && used + need > this.executor.capacity) return;
      const from = t.results.length;
      const rungs = rungsFor(this.spec.earlyStopping, t.epochs);
      const until = t.workers === 1 ? Math.min(t.epochs, rungs.find((r) => r > from) ?? t.epochs) : t.epochs;
      const runsDir = t.workers === 1
        ? path.join(this.spec.dir, 'trials', t.id, `from-epoch-${from}-${t.runDirs.length}`)
        : path.join(this.spec.dir, 'trials', t.id, 'cluster');
      const run = await this.executor.start({
        trialId: t.id, jobFile: t.jobFile, workers: t.workers, fromEpoch: from, untilEpoch: until,
        resumeFrom: from > 0 && t.workers === 1 ? t.checkpoints[from] : undefined,
        runsDir, attempt: t.runDirs.length, dataDir: this.options.dataDir, backend: this.options.backend,
      });
      if (t.workers === 1 || !t.runDirs.includes(runsDir)) t.runDirs.push(runsDir);
      t.state = 'running';
      this.running.set(t.id, run);
      void run.ended.then(() => this.wake());
      used += need;
    }
  }

  // A trial may run once it has nothing left to inherit and no decision pending at its current epoch.
  private readyToRun(t: TrialRecord): boolean {
    if (t.fork !== null && t.results.length < t.fork.epochs) return false;
    if (t.results.length >= t.epochs) return false;
    return !rungsFor(this.spec.earlyStopping, t.epochs).some((r) => r <= t.results.length && !t.decisions.some((d) => d.rung === r));
  }

  private waitForChange(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, this.options.pollMs ?? 500);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Reads every running trial's progress, and settles the runs that ended. */
  private collect(): void {
    const live = new Map<string, { epoch: number; step: number }>();
    for (const [id, run] of [...this.running]) {
      const t = this.trial(id);
      this.commit(t, run);
      const progress = run.progress();
      if (progress) live.set(id, progress);
      const exit = run.exit();
      if (exit === undefined) continue;
      if (exit.error !== undefined) throw exit.error;
      this.running.delete(id);
      if (t.state === 'stopped') continue;
      const expected = Math.min(run.request.untilEpoch, t.epochs);
      if (exit.succeeded && t.results.length >= expected) {
        t.state = 'pending';
      } else if (this.options.signal?.aborted) {
        t.state = 'pending';
      } else {
        t.state = 'failed';
        t.error = `${exit.what} after ${t.results.length} of ${t.epochs} epochs: ${exit.detail}`;
        this.checkFailureBudget(t.error);
      }
    }
    this.advanceAll();
    this.options.onChange?.(this.state, live);
  }

  private commit(t: TrialRecord, run: TrialRun): void {
    if (t.state === 'stopped') return;
    const { results, checkpoints } = run.committed();
    for (const r of results) {
      if (r.epoch === t.results.length) t.results.push({ ...r, ranBy: t.id });
    }
    for (const [done, dir] of checkpoints) t.checkpoints[done] = dir;
    this.advance(t);
  }

  private checkFailureBudget(lastError: string): void {
    const failed = this.state.trials.filter((t) => t.state === 'failed').length;
    lastError = this.state.trials.filter((t) => t.state === 'failed').at(-1)?.error ?? lastError;
    if (failed > this.spec.budget.maxFailedTrials) {
      const err = new FailureBudgetError(failed, this.spec.budget.maxFailedTrials, lastError);
      this.state.stopReason = err.message;
      throw err;
    }
  }

  private async stopAll(): Promise<void> {
    const runs = [...this.running.entries()];
    await Promise.all(runs.map(([, run]) => run.stop()));
    for (const [id, run] of runs) {
      const t = this.trial(id);
      this.commit(t, run);
      if (t.state === 'running') t.state = 'pending';
      this.running.delete(id);
    }
  }

  private trial(id: string): TrialRecord {
    const t = this.state.trials.find((x) => x.id === id);
    if (t === undefined) throw new SweepStateError(this.spec.dir, `trial ${id} is referenced but not in the state`);
    return t;
  }

  private save(): void {
    writeSweepState(this.spec.dir, this.state);
  }
}
