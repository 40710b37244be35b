/**
 * The coordinator's own replica update, taken off the step's critical path. Once a step commits, its
 * members apply the update themselves and only need the next assignment; the coordinator's copy (for
 * checkpoints, joiners and resume) can follow a moment later. So the optimizer apply is deferred until the
 * next step's assignments have gone out (a setImmediate after the commit), or done at once by `settle`
 * when something is about to read the weights or the optimizer state, whichever comes first. Updates run
 * in commit order: deferring one settles the one before.
 */
export class DeferredUpdate {
  private pending: (() => void) | null = null;
  private failure: unknown = undefined;
  private failed = false;

  /** Runs `apply` after the current turn of the event loop, or at the next `settle`, whichever comes first. */
  defer(apply: () => void): void {
    this.settle();
    this.pending = apply;
    setImmediate(() => {
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
