/**
 * Writes a large sweep state file over and over, as a sweep does after every change, for a test that
 * SIGKILLs it mid-write: `node --import tsx test/support/sweep-state-writer.ts DIR`. Each state's stopReason
 * holds its write number, so the reader can tell which complete state survived. A writer started on a folder
 * that already holds a state goes on from that state's number, so the numbers only grow across writers.
 */
import { emptyState, readSweepState, type TrialRecord, writeSweepState } from '../../sweep';

const dir = process.argv[2];
const state = emptyState('killed-mid-write', 'hash');
// A few megabytes of trials: a write then takes long enough that a kill lands inside one.
const trial: TrialRecord = {
  id: 't000', index: 0, params: { 'optimizer.learningRate': 0.001 }, epochs: 7, workers: 1, jobFile: '/x/job.yaml', state: 'completed',
  fork: null, results: [], checkpoints: {}, decisions: [], runDirs: [], signatures: Array.from({ length: 7 }, (_, i) => `sig-${i}`.repeat(8)),
};
state.trials = Array.from({ length: 6000 }, (_, i) => ({ ...trial, id: `t${i}`, index: i }));
const first = Number(readSweepState(dir)?.stopReason ?? 0) + 1;
for (let n = first; ; n++) {
  state.stopReason = String(n);
  writeSweepState(dir, state);
  if (n === first) process.stdout.write('first write done\n');
}
