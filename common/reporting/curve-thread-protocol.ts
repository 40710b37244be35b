/** The messages between a {@link CurveThread} and its thread (curve-thread-main.ts). */
import type { CurveFiles } from './curves';
import type { MetricsRecord } from './records';

/** Draw the curves into `dir` from the records sent so far plus `added` (only the new ones travel). */
export interface DrawRequest {
  drawId: number;
  dir: string;
  added: MetricsRecord[];
}

/** The answer to one DrawRequest. */
export type DrawAnswer =
  | { type: 'drawn'; drawId: number; files: CurveFiles }
  | { type: 'failed'; drawId: number; message: string; stack?: string };
