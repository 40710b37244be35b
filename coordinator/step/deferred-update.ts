/**
 * The coordinator's own replica update, taken off the step's critical path. Once a step commits, its
 * members apply the update themselves and only need the next step's share; the coordinator's copy (for
 * checkpoints, joiners and resume) can follow a moment later. So the optimizer apply waits until it is
 * released, which the job does once every share of the next step is handed out (a setImmediate after
 * that), or is done at once by `settle` when something is about to read the weights or the optimizer
 * state, whichever comes first. Released earlier (at the commit), it would hold the event loop just as
 * the workers that finish their allreduce after the coordinator ask for their next share. Updates run in
 * commit order: deferring one settles the one before.
 */
export class DeferredUpdate {
  private pending: (() => void) | null = null;
  private failure: unknown = undefined;
  private failed = false;

  /** Keeps `apply` until {@link release} (and a turn of the event loop) or the next `settle`, whichever comes first. */
  defer(apply: () => void): void {
    this.settle();
    this.pending = apply;
  }

  /** Runs the pending update after the current turn of the event loop (if it is still pending then). */
  release(): void {
    const apply = this.pending;
    if (!apply) return;
    setImmediate(() => {
      if (this.pending !== apply) return;
      try {
        this.settle();
      } catch {
        // Kept: the next settle() rethrows it where the job can fail with it.
      }
    });
  }

  /** Applies the pending update now, if any. Rethrows the failure of a deferred update, every time. */
  settle(): void {
    if (this.failed) throw this.failure;
    const apply = this.pending;
    this.pending = null;
    if (!apply) return;
    try {
      apply();
    } catch (err) {
      this.failed = true;
      this.failure = err;
      throw err;
    }
  }
}
