/**
 * What the Kubernetes executor's two kinds of run share: a trial run whose results come from its run folder
 * on the shared volume, whose end is found by polling the API (`watch`), and which is ended by deleting its
 * objects (`remove`): in the background when early stopping cancels it, in the foreground (waiting until the
 * pods are gone, their SIGTERM checkpoint written) when the sweep stops.
 */
import type { TrialExit, TrialRun, TrialRunRequest } from './executor';
import { committedEpochs, runProgress } from './trial-run-dir';

/** A trial run on Kubernetes, ended by deleting its objects. */
export abstract class WatchedTrialRun implements TrialRun {
  readonly ended: Promise<void>;
  protected result: TrialExit | undefined;
  /** Set once the sweep asked the run to end: its objects going away is then no failure. */
  protected stopping = false;
  private begin: () => void = () => undefined;

  constructor(readonly request: TrialRunRequest) {
    const started = new Promise<void>((resolve) => (this.begin = resolve));
    this.ended = started.then(() => this.watch());
  }

  /** Starts watching; subclasses call it at the end of their constructor, once their fields are set. */
  protected watchFromNow(): void {
    this.begin();
  }

  /** Polls until the run ended, setting `result`. Never rejects: an API failure is a result with `error`. */
  protected abstract watch(): Promise<void>;

  /** Deletes the run's objects. */
  protected abstract remove(propagation: 'Foreground' | 'Background'): Promise<void>;

  exit(): TrialExit | undefined {
    return this.result;
  }

  committed(): ReturnType<TrialRun['committed']> {
    return committedEpochs(this.request);
  }

  progress(): ReturnType<TrialRun['progress']> {
    return runProgress(this.request);
  }

  cancel(): void {
    this.stopping = true;
    void this.remove('Background').catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.remove('Foreground');
    await this.ended;
  }
}
