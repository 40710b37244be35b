import assert from 'node:assert/strict';
import { type JobSpec, parseJobSpec } from '../common/job';
import {
  baseLearningRate,
  groupLearningRates,
  type PlateauState,
  ReduceLrOnPlateau,
  warmupSteps,
} from '../common/training';

/** A validated spec with defaults filled; `extra` is YAML appended to the minimal one. */
function jobSpec(schedule: string, extra = ''): JobSpec {
  return parseJobSpec(`
name: lr
model: { architecture: small_cnn }
training: { epochs: 10 }
optimizer: { type: sgd, learningRate: 0.1 }
schedule: ${schedule}
${extra}`);
}

const STEPS = 4;
const at = (epoch: number, stepInEpoch = 0) => ({ epoch, stepInEpoch, stepsPerEpoch: STEPS });
const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-12 + 1e-9 * Math.abs(b), `${what}: expected ${b}, got ${a}`);

describe('learning-rate schedules', () => {
  it('constant: the optimizer rate everywhere, times each group multiplier', () => {
    const spec = jobSpec('{ type: constant }');
    for (const e of [0, 5, 9]) close(baseLearningRate(at(e, 3), spec), 0.1, `epoch ${e}`);
    assert.deepEqual(groupLearningRates(0.1, spec.paramGroups), { backbone: 0.1, head: 1 });
  });

  it('step: multiplies by gamma every stepEpochs epochs, constant within an epoch', () => {
    const spec = jobSpec('{ type: step, stepEpochs: 3, gamma: 0.5 }');
    const byEpoch = Array.from({ length: 10 }, (_, e) => baseLearningRate(at(e, 2), spec));
    const expected = [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125];
    byEpoch.forEach((lr, e) => close(lr, expected[e], `epoch ${e}`));
  });

  it('cosine: per step from the base rate to minLearningRate over training.epochs', () => {
    const spec = jobSpec('{ type: cosine, minLearningRate: 0.01 }');
    close(baseLearningRate(at(0, 0), spec), 0.1, 'start');
    close(baseLearningRate(at(5, 0), spec), 0.055, 'half-way');
    const total = 10 * STEPS;
    close(baseLearningRate(at(9, STEPS - 1), spec), 0.01 + 0.09 * 0.5 * (1 + Math.cos(Math.PI * (total - 1) / total)), 'last step');
    let prev = Infinity;
    for (let e = 0; e < 10; e++) {
      for (let s = 0; s < STEPS; s++) {
        const lr = baseLearningRate(at(e, s), spec);
        assert.ok(lr < prev && lr >= 0.01, `strictly decreasing within [min, base] at ${e}/${s}`);
        prev = lr;
      }
    }
  });

  it('warm-up: linear per step from base/W to the base, then the schedule takes over', () => {
    const spec = jobSpec('{ type: constant, warmupEpochs: 2 }');
    assert.equal(warmupSteps(spec, STEPS), 8);
    for (let g = 0; g < 8; g++) close(baseLearningRate(at(Math.floor(g / STEPS), g % STEPS), spec), 0.1 * (g + 1) / 8, `step ${g}`);
    close(baseLearningRate(at(2, 0), spec), 0.1, 'after warm-up');
    // Fractional epochs are rounded to steps, never to 0 steps.
    assert.equal(warmupSteps(jobSpec('{ type: constant, warmupEpochs: 0.1 }'), STEPS), 1);
  });

  it('warm-up before cosine: annealing starts when warm-up ends', () => {
    const spec = jobSpec('{ type: cosine, warmupEpochs: 1 }');
    close(baseLearningRate(at(0, 0), spec), 0.1 / STEPS, 'first step');
    close(baseLearningRate(at(0, STEPS - 1), spec), 0.1, 'end of warm-up');
    close(baseLearningRate(at(1, 0), spec), 0.1, 'cosine starts at the base');
    const span = 9 * STEPS;
    close(baseLearningRate(at(1, 1), spec), 0.05 * (1 + Math.cos(Math.PI / span)), 'first annealed step');
  });

  it('unfreezeLearningRate replaces the base from the unfreeze epoch on', () => {
    const spec = jobSpec('{ type: step, stepEpochs: 4, gamma: 0.1 }', 'freeze: { backboneEpochs: 2, unfreezeLearningRate: 0.02 }');
    const lrs = [0, 1, 2, 3, 4].map((e) => baseLearningRate(at(e), spec));
    [0.1, 0.1, 0.02, 0.02, 0.002].forEach((x, e) => close(lrs[e], x, `epoch ${e}`));
    // Without unfreezeLearningRate the freeze does not touch the rate.
    close(baseLearningRate(at(3), jobSpec('{ type: constant }', 'freeze: { backboneEpochs: 2 }')), 0.1, 'no override');
  });

  it('with nothing frozen, unfreezeLearningRate is the rate from epoch 0: the backbone trains from the start', () => {
    const spec = jobSpec('{ type: step, stepEpochs: 4, gamma: 0.1 }', 'freeze: { backboneEpochs: 0, unfreezeLearningRate: 0.02 }');
    [0.02, 0.02, 0.002].forEach((x, i) => close(baseLearningRate(at([0, 3, 4][i]), spec), x, `epoch ${[0, 3, 4][i]}`));
    // Its backbone trains at the rate a frozen trial's backbone gets once unfrozen.
    const frozenTwo = jobSpec('{ type: step, stepEpochs: 4, gamma: 0.1 }', 'freeze: { backboneEpochs: 2, unfreezeLearningRate: 0.02 }');
    close(baseLearningRate(at(2), spec), baseLearningRate(at(2), frozenTwo), 'after the unfreeze');
    // A cosine anneals from the unfreeze rate over the whole run.
    const cosine = jobSpec('{ type: cosine, minLearningRate: 0 }', 'freeze: { backboneEpochs: 0, unfreezeLearningRate: 0.02 }');
    close(baseLearningRate(at(0), cosine), 0.02, 'cosine start');
    close(baseLearningRate(at(5), cosine), 0.01, 'cosine half-way');
  });

  it('plateau: the base rate times the plateau scale, floored at its minimum', () => {
    const spec = jobSpec('{ type: plateau, plateau: { minLearningRate: 0.005 } }');
    close(baseLearningRate(at(3), spec, 1), 0.1, 'scale 1');
    close(baseLearningRate(at(3), spec, 0.1), 0.01, 'scale 0.1');
    close(baseLearningRate(at(3), spec, 0.01), 0.005, 'floored');
  });
});

describe('ReduceLrOnPlateau', () => {
  const plateauSpec = { factor: 0.5, patience: 2, minDelta: 0.01, cooldown: 0, minLearningRate: 0 };

  it('reduces after `patience` epochs without an improvement larger than minDelta', () => {
    const p = new ReduceLrOnPlateau(plateauSpec);
    const decisions = [1.0, 0.9, 0.895, 0.91, 0.8, 0.85, 0.85].map((loss) => p.update(loss, 0.1).reduced);
    // 0.895 is within minDelta of 0.9: bad; 0.91 bad -> reduce; 0.8 improves; two bad -> reduce.
    assert.deepEqual(decisions, [false, false, false, true, false, false, true]);
    assert.equal(p.scale, 0.25);
  });

  it('ignores exactly `cooldown` epochs after a reduction', () => {
    const p = new ReduceLrOnPlateau({ ...plateauSpec, patience: 1, cooldown: 2 });
    const decisions = [1, 1, 1, 1, 1, 1].map((loss) => p.update(loss, 0.1).reduced);
    // epoch 1 bad -> reduce; epochs 2, 3 in cooldown; epoch 4 bad -> reduce; 5 cooldown.
    assert.deepEqual(decisions, [false, true, false, false, true, false]);
  });

  it('stops reducing at minLearningRate; a NaN loss counts as no improvement', () => {
    const p = new ReduceLrOnPlateau({ ...plateauSpec, patience: 1, minLearningRate: 0.05 });
    p.update(1, 0.1);
    assert.equal(p.update(NaN, 0.1).reduced, true);
    assert.equal(p.scale, 0.5);
    assert.equal(p.update(2, 0.1).reduced, false, 'already at 0.05');
    assert.equal(p.scale, 0.5);
  });

  it('its state is JSON-safe and a restored instance decides identically', () => {
    const a = new ReduceLrOnPlateau(plateauSpec);
    for (const loss of [1, 0.5, 0.6]) a.update(loss, 0.1);
    const wire = JSON.parse(JSON.stringify(a.getState())) as PlateauState;
    assert.deepEqual(wire, { best: 0.5, badEpochs: 1, cooldownLeft: 0, scale: 1 });
    const b = new ReduceLrOnPlateau(plateauSpec, wire);
    for (const loss of [0.7, 0.4, 0.45, 0.41]) assert.deepEqual(b.update(loss, 0.1), a.update(loss, 0.1));
    assert.deepEqual(b.getState(), a.getState());
    assert.equal(new ReduceLrOnPlateau(plateauSpec).getState().best, null);
  });

  it('rejects a factor outside (0, 1) and a scale outside (0, 1]', () => {
    assert.throws(() => new ReduceLrOnPlateau({ ...plateauSpec, factor: 1 }), /schedule.plateau.factor/);
    assert.throws(() => new ReduceLrOnPlateau(plateauSpec, { best: null, badEpochs: 0, cooldownLeft: 0, scale: 0 }), /scale/);
  });
});
