/**
 * The example sweeps under sweeps/ are what `make sweep` and `make bench-sweep` run: each must parse, compile
 * every trial's job, and do what its comment promises (the smoke sweep exercises early stopping and a shared
 * prefix; seeds-freeze-lr is the seed documents' 3 x 2 grid, frozen trials sharing their frozen epochs).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createSearch, createTrial, loadSweepSpec, rungsFor, TrainCounts, trialJob, type TrialRecord } from '../sweep';
import { writeSignalCifar } from './support/cluster-data';

const SWEEPS = resolve(__dirname, '..', 'sweeps');

describe('example sweeps (sweeps/*.yaml)', () => {
  const root = mkdtempSync(join(tmpdir(), 'sweep-examples-'));
  const data = join(root, 'data');
  // Sharing depends only on the trials agreeing with each other, so any data of the sweep's size will do.
  before(() => {
    mkdirSync(data);
    writeSignalCifar(data, 1000, 1);
  });

  /** Every trial the spec's search proposes before it learns anything, planned by the sweep's own planner. */
  async function plan(file: string): Promise<TrialRecord[]> {
    const spec = { ...loadSweepSpec(join(SWEEPS, file)), dir: join(root, file) };
    const search = createSearch(spec.algorithm, spec.parameters);
    const counts = new TrainCounts(data);
    const trials: TrialRecord[] = [];
    while (trials.length < spec.budget.maxTrials) {
      const trial = await createTrial(spec, search, trials, counts, spec.objective);
      if (trial === null) break;
      trials.push(trial);
    }
    return trials;
  }

  it('every example parses and compiles every trial job', async () => {
    const files = readdirSync(SWEEPS).filter((f) => f.endsWith('.yaml')).sort();
    assert.deepEqual(files, ['pretrained-vs-scratch.yaml', 'seeds-freeze-lr.yaml', 'smoke.yaml']);
    for (const f of files) assert.ok((await plan(f)).length > 0, f);
  });

  it('smoke stops early at a rung before its last epoch and forks a trial from a shared prefix', async () => {
    const spec = loadSweepSpec(join(SWEEPS, 'smoke.yaml'));
    const trials = await plan('smoke.yaml');
    assert.ok(trials.every((t) => rungsFor(spec.earlyStopping, t.epochs).length > 0), 'every trial meets a rung');
    assert.deepEqual(trials.map((t) => t.fork), [null, null, { from: 't000', epochs: 1 }, { from: 't001', epochs: 1 }]);
    assert.ok(trialJob(spec, trials[0].params, 0).data.limit > 0, 'smoke reads a data limit, to finish in minutes');
  });

  it('seeds-freeze-lr is frozen 0/2/5 x head 1/10 on the pretrained MobileNet; 2 frozen epochs are shared with 5', async () => {
    const spec = loadSweepSpec(join(SWEEPS, 'seeds-freeze-lr.yaml'));
    const trials = await plan('seeds-freeze-lr.yaml');
    assert.deepEqual(trials.map((t) => [t.params['freeze.backboneEpochs'], t.params['paramGroups.head.lrMultiplier']]),
      [[0, 1], [0, 10], [2, 1], [2, 10], [5, 1], [5, 10]]);
    const job = trialJob(spec, trials[0].params, 0);
    assert.deepEqual([job.model.architecture, job.model.pretrained], ['mobilenet_v1', true]);
    assert.deepEqual(trials.map((t) => t.fork), [null, null, null, null, { from: 't002', epochs: 2 }, { from: 't003', epochs: 2 }]);
  });
});
