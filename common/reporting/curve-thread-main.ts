/**
 * Entry point of the {@link CurveThread}'s thread: keeps the run's records as they arrive and answers each
 * draw request with `writeCurves` over all of them. The warnings go back with the answer.
 */
import { parentPort } from 'node:worker_threads';
import { writeCurves } from './curves';
import type { DrawAnswer, DrawRequest } from './curve-thread-protocol';
import type { MetricsRecord } from './records';

const port = parentPort;
if (!port) throw new Error('curve-thread-main.ts runs as a worker thread of CurveThread, not on its own');
const records: MetricsRecord[] = [];
port.on('message', (request: DrawRequest) => {
  records.push(...request.added);
  writeCurves(request.dir, records, { warn: () => undefined }).then(
    (files) => port.postMessage({ type: 'drawn', drawId: request.drawId, files } satisfies DrawAnswer),
    (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err));
      port.postMessage({ type: 'failed', drawId: request.drawId, message: e.message, stack: e.stack } satisfies DrawAnswer);
    },
  );
});
