import assert from 'node:assert/strict';
import { parseJobSpec } from '../common';
import { epochSignatures, forkFor, sharedEpochs, type TrialRecord } from '../sweep';

const TRAIN_IMAGES = 100;

function signatures(yaml: string, optimizer = '{ type: adam, learningRate: 0.01 }'): string[] {
  return epochSignatures(parseJobSpec(`model: { architecture: small_cnn }\noptimizer: ${optimizer}\n${yaml}`), TRAIN_IMAGES);
}

function trial(id: string, sigs: string[], state: TrialRecord['state'] = 'pending'): TrialRecord {
  return {
    id, index: Number(id.slice(1)), params: {}, epochs: sigs.length, workers: 1, jobFile: '', state, fork: null, results: [],
    checkpoints: {}, decisions: [], runDirs: [], signatures: sigs,
  };
}

describe('sweep shared prefixes (effective per-step configuration)', () => {
  it('a 2-frozen-epoch trial shares exactly its frozen epochs with a 5-frozen one', () => {
    const two = signatures('training: { epochs: 6 }\nfreeze: { backboneEpochs: 2, unfreezeLearningRate: 0.001 }');
    const five = signatures('training: { epochs: 6 }\nfreeze: { backboneEpochs: 5, unfreezeLearningRate: 0.001 }');
    assert.equal(sharedEpochs(two, five), 2);
  });

  it('same frozen phase, different post-unfreeze rate: shares the frozen phase', () => {
    const a = signatures('training: { epochs: 5 }\nfreeze: { backboneEpochs: 3, unfreezeLearningRate: 0.001 }');
    const b = signatures('training: { epochs: 5 }\nfreeze: { backboneEpochs: 3, unfreezeLearningRate: 0.0001 }');
    assert.equal(sharedEpochs(a, b), 3);
  });

  it('nothing frozen: the unfreeze rate is the rate of every step, so it shares with that rate written as the base', () => {
    const viaUnfreeze = signatures('training: { epochs: 3 }\nfreeze: { backboneEpochs: 0, unfreezeLearningRate: 0.001 }');
    assert.equal(sharedEpochs(viaUnfreeze, signatures('training: { epochs: 3 }', '{ type: adam, learningRate: 0.001 }')), 3);
    assert.equal(sharedEpochs(viaUnfreeze, signatures('training: { epochs: 3 }')), 0);
  });

  it('two cosine schedules with different training.epochs share nothing: their rates differ from step 1', () => {
    const short = signatures('training: { epochs: 3 }\nschedule: { type: cosine }');
    const long = signatures('training: { epochs: 6 }\nschedule: { type: cosine }');
    assert.equal(sharedEpochs(short, long), 0);
  });

  it('constant schedules with different training.epochs share the shorter run whole', () => {
    assert.equal(sharedEpochs(signatures('training: { epochs: 3 }'), signatures('training: { epochs: 6 }')), 3);
  });

  it('the backbone multiplier does not matter while the backbone is frozen; the head multiplier does', () => {
    const base = 'training: { epochs: 4 }\nfreeze: { backboneEpochs: 2 }';
    const a = signatures(`${base}\nparamGroups: { backbone: { lrMultiplier: 1 } }`);
    const b = signatures(`${base}\nparamGroups: { backbone: { lrMultiplier: 0.1 } }`);
    assert.equal(sharedEpochs(a, b), 2);
    assert.equal(sharedEpochs(a, signatures(`${base}\nparamGroups: { head: { lrMultiplier: 1 } }`)), 0);
  });

  it('data order, augmentation, model and warm-up all separate trials; names and cluster settings do not', () => {
    const base = signatures('training: { epochs: 3 }');
    assert.equal(sharedEpochs(base, signatures('training: { epochs: 3 }\nseed: 1')), 0);
    assert.equal(sharedEpochs(base, signatures('training: { epochs: 3, batchSize: 16 }')), 0);
    assert.equal(sharedEpochs(base, signatures('training: { epochs: 3 }\ndata: { augment: { rotationDeg: 0 } }')), 0);
    assert.equal(sharedEpochs(base, signatures('training: { epochs: 3 }', '{ type: adam, learningRate: 0.01, beta1: 0.8 }')), 0);
    assert.equal(sharedEpochs(base, signatures('training: { epochs: 3 }\nschedule: { warmupEpochs: 1 }')), 0);
    assert.equal(sharedEpochs(base, signatures('training: { epochs: 3 }\nname: other\ndistributed: { desiredWorkers: 3 }\noutput: { runsDir: x }')), 3);
  });

  it('a trial forks from the earlier trial it shares most with (the lowest index on a tie), never from a failed one', () => {
    const t0 = trial('t000', ['a', 'b', 'x']);
    const t1 = trial('t001', ['a', 'b', 'c', 'y']);
    const t2 = trial('t002', ['a', 'b', 'c', 'd'], 'failed');
    assert.deepEqual(forkFor(trial('t003', ['a', 'b', 'c', 'd']), [t0, t1, t2]), { from: 't001', epochs: 3 });
    assert.deepEqual(forkFor(trial('t003', ['a', 'b', 'z']), [t0, t1]), { from: 't000', epochs: 2 });
    assert.equal(forkFor(trial('t003', ['q']), [t0, t1]), null);
  });
});
