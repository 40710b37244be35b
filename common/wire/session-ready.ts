/**
 * What a worker states each time it asks for its next order on its Session stream (a SessionReady):
 * the one vocabulary of both sides, converted from and to the wire by each role's adapter.
 */
export interface ReadyState {
  workerId: string;
  /** From the registration: a session of an incarnation that is no longer the live one is refused. */
  incarnation: number;
  /** The last step whose share the coordinator accepted from this worker; 0 before the first. */
  lastCompletedStep: number;
  /** The configuration version the worker holds. */
  configVersion: number;
  /** Updates applied to the worker's replica: the next order's update starts there. */
  weightsVersion: number;
  /** How long the worker lets the coordinator hold the order back before a WAIT. */
  maxWaitMs: number;
  /**
   * The allreduce whose result the worker holds, or is reducing now, and has not applied ('' when none): it
   * can take the next step's share before the coordinator commits the step. A REDUCE order stands for the
   * ready that says so (the coordinator sends the next order right behind it), so that share reaches the
   * worker during the exchange; should its part fail, it drops that share.
   */
  reducedKey: string;
}
