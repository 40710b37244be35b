import assert from 'node:assert/strict';
import { chaosLine, runChaos } from './chaos/run-chaos';

// The short chaos run of `make test`: one fault of each of the seven kinds, in a seeded order, on a small
// job; `make chaos` runs a longer one. Needs root and nats-server, as CI has.
describe('chaos: every fault kind on one job, and the result is the undisturbed one', function () {
  this.timeout(900_000);

  it('loses no sample, counts none twice, keeps the replicas equal and ends bit-identical', async () => {
    const lines: string[] = [];
    const result = await runChaos({ seed: 7, faults: 7, epochs: 4, images: 384, workers: 3, log: (l) => lines.push(l) });
    const line = chaosLine(result);
    assert.deepEqual(
      { survived: result.survived, lost: result.samplesLost, duplicated: result.samplesDuplicated, mismatches: result.hashMismatches, finished: result.finished, finalEqual: result.finalEqual },
      { survived: 7, lost: 0, duplicated: 0, mismatches: 0, finished: true, finalEqual: true },
      `${line}\n${lines.join('\n')}`,
    );
    assert.ok(Object.values(result.kinds).every((n) => n === 1), line);
  });
});
