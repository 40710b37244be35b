import assert from 'node:assert/strict';
import { chaosLine, runChaos } from './chaos/run-chaos';
import { FAULT_KINDS } from './chaos/faults';

// The short chaos run of `make test`: one fault of each of the seven kinds, in a seeded order, on a small
// job; `make chaos` runs a longer one. Cutting a worker off the network needs network namespaces and veth
// pairs, and filling the checkpoint disk needs a tmpfs mount: both need root, as CI has. Elsewhere the suite
// is skipped, and says why. 12 epochs of 6 steps: the seven faults usually recover by step 20-26, but once, on
// a loaded machine, the last fault came at step 46 of 8 epochs' 48 (a worker's session had also been lost and
// registered again), and the job ended during that fault's recovery.
const IS_ROOT = process.getuid?.() === 0;

describe('chaos: every fault kind on one job, and the result is the undisturbed one', function () {
  this.timeout(600_000);

  before(function () {
    if (!IS_ROOT) {
      process.stderr.write('    chaos suite skipped: it needs root (network namespaces, veth pairs, a tmpfs mount); CI runs as root\n');
      this.skip();
    }
  });

  it('loses no sample, counts none twice, keeps the replicas equal and ends bit-identical', async () => {
    const lines: string[] = [];
    const result = await runChaos({ seed: 7, faults: FAULT_KINDS.length, epochs: 12, images: 192, workers: 3, maxGapSteps: 1, log: (l) => lines.push(l) });
    const line = chaosLine(result);
    process.stdout.write(`    ${line}\n`);
    assert.deepEqual(
      { survived: result.survived, lost: result.samplesLost, duplicated: result.samplesDuplicated, mismatches: result.hashMismatches, finished: result.finished, finalEqual: result.finalEqual },
      { survived: FAULT_KINDS.length, lost: 0, duplicated: 0, mismatches: 0, finished: true, finalEqual: true },
      `${line}\n${lines.join('\n')}`,
    );
    assert.ok(Object.values(result.kinds).every((n) => n === 1), line);
  });
});
