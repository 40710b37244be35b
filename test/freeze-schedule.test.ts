import assert from 'node:assert/strict';
import { type JobSpec, parseJobSpec } from '../common/job';
import { isBackboneFrozen, type ScheduledEvent, scheduledEvents } from '../common/training';

function jobSpec(schedule: string, freeze: string, epochs = 8): JobSpec {
  return parseJobSpec(`
name: freeze
model: { architecture: small_cnn }
training: { epochs: ${epochs} }
optimizer: { type: sgd, learningRate: 0.1 }
paramGroups: { backbone: { lrMultiplier: 1 }, head: { lrMultiplier: 5 } }
schedule: ${schedule}
freeze: ${freeze}`);
}

/** Every scheduled event of a whole run, epoch by epoch. */
function timeline(spec: JobSpec, scale = 1): ScheduledEvent[] {
  return Array.from({ length: spec.training.epochs }, (_, e) => scheduledEvents(e, spec, scale)).flat();
}

describe('freeze schedule', () => {
  it('freezes the backbone for epochs [0, backboneEpochs)', () => {
    const { freeze } = jobSpec('{ type: constant }', '{ backboneEpochs: 2 }');
    assert.deepEqual([0, 1, 2, 3].map((e) => isBackboneFrozen(e, freeze)), [true, true, false, false]);
    assert.equal(isBackboneFrozen(0, { backboneEpochs: 0 }), false);
  });

  it('announces freeze at 0, unfreeze and the unfreeze rate at backboneEpochs, nothing else', () => {
    const spec = jobSpec('{ type: constant }', '{ backboneEpochs: 3, unfreezeLearningRate: 0.01 }');
    assert.deepEqual(timeline(spec), [
      { type: 'freeze', epoch: 0, group: 'backbone' },
      { type: 'unfreeze', epoch: 3, group: 'backbone' },
      { type: 'lr-change', epoch: 3, reason: 'unfreeze', from: 0.1, to: 0.01, lr: { backbone: 0.01, head: 0.05 } },
    ]);
  });

  it('announces step decays at their epochs; a decay on the unfreeze epoch is one change', () => {
    const spec = jobSpec('{ type: step, stepEpochs: 2, gamma: 0.5 }', '{ backboneEpochs: 4, unfreezeLearningRate: 0.04 }');
    const changes = timeline(spec).filter((e) => e.type === 'lr-change');
    assert.deepEqual(changes.map((e) => [e.epoch, e.reason, e.from, e.to]), [
      [2, 'step-decay', 0.1, 0.05],
      [4, 'unfreeze', 0.05, 0.01],
      [6, 'step-decay', 0.01, 0.005],
    ]);
  });

  it('cosine annealing and warm-up are continuous: no lr-change events without a freeze', () => {
    assert.deepEqual(timeline(jobSpec('{ type: cosine, warmupEpochs: 1 }', '{ backboneEpochs: 0 }')), []);
  });

  it('nothing frozen with an unfreeze rate: that rate from epoch 0, so no freeze, unfreeze or rate change', () => {
    assert.deepEqual(timeline(jobSpec('{ type: constant }', '{ backboneEpochs: 0, unfreezeLearningRate: 0.01 }')), []);
  });

  it('plateau: the scale in force is applied on both sides of a boundary, so only the unfreeze shows', () => {
    const spec = jobSpec('{ type: plateau }', '{ backboneEpochs: 1, unfreezeLearningRate: 0.05 }');
    const changes = timeline(spec, 0.1).filter((e) => e.type === 'lr-change');
    assert.equal(changes.length, 1);
    assert.equal(changes[0].epoch, 1);
    assert.ok(Math.abs(changes[0].from - 0.01) < 1e-12 && Math.abs(changes[0].to - 0.005) < 1e-12);
  });

  it('a freeze longer than training never unfreezes', () => {
    const events = timeline(jobSpec('{ type: constant }', '{ backboneEpochs: 20 }', 4));
    assert.deepEqual(events.map((e) => e.type), ['freeze']);
  });
});
