import assert from 'node:assert/strict';
import { Rng } from '../common';
import { createSearch, gridPoint, type Observation, randomPoint, type SearchSpace, suggestTpe } from '../sweep';

// Branin-Hoo on x1 in [-5, 10], x2 in [0, 15]: three global minima of 0.397887.
function branin(x1: number, x2: number): number {
  const b = 5.1 / (4 * Math.PI * Math.PI);
  const c = 5 / Math.PI;
  return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * Math.PI)) * Math.cos(x1) + 10;
}
const BRANIN_MIN = 0.397887;
const SPACE: SearchSpace = [
  { path: 'x1', domain: { type: 'uniform', min: -5, max: 10 } },
  { path: 'x2', domain: { type: 'uniform', min: 0, max: 15 } },
];

function bestOf(algorithm: 'random' | 'tpe', seed: number, budget: number): number {
  const search = createSearch(algorithm === 'tpe' ? { type: 'tpe', seed, startupTrials: 10, candidates: 24 } : { type: 'random', seed }, SPACE);
  const history: Observation[] = [];
  for (let i = 0; i < budget; i++) {
    const p = search.suggest(i, history)!;
    history.push({ params: p, loss: branin(Number(p.x1), Number(p.x2)) });
  }
  return Math.min(...history.map((o) => o.loss));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2;
}

describe('sweep search', () => {
  it('TPE beats seeded random search on Branin: median best of 10 seeds, 60 trials each', () => {
    const seeds = Array.from({ length: 10 }, (_, s) => s);
    const tpe = median(seeds.map((s) => bestOf('tpe', s, 60)));
    const random = median(seeds.map((s) => bestOf('random', s, 60)));
    assert.ok(tpe < random, `TPE median best ${tpe.toFixed(4)} should beat random ${random.toFixed(4)}`);
    assert.ok(tpe - BRANIN_MIN < 0.5 * (random - BRANIN_MIN), `TPE regret ${(tpe - BRANIN_MIN).toFixed(4)} vs random ${(random - BRANIN_MIN).toFixed(4)}`);
  });

  it('is a pure function of (seed, index, history): a resumed sweep proposes the same trials', () => {
    const history: Observation[] = [{ params: { x1: 1, x2: 2 }, loss: 3 }, { params: { x1: 4, x2: 5 }, loss: 1 }];
    const a = createSearch({ type: 'tpe', seed: 3, startupTrials: 1, candidates: 24 }, SPACE);
    const b = createSearch({ type: 'tpe', seed: 3, startupTrials: 1, candidates: 24 }, SPACE);
    assert.deepEqual(a.suggest(5, history), b.suggest(5, history));
    assert.notDeepEqual(a.suggest(5, history), a.suggest(6, history));
  });

  it('walks a grid with the last parameter fastest and ends', () => {
    const space: SearchSpace = [
      { path: 'freeze.backboneEpochs', domain: { type: 'int', min: 0, max: 4, step: 2 } },
      { path: 'paramGroups.head.lrMultiplier', domain: { type: 'choice', values: [1, 10] } },
    ];
    const points = Array.from({ length: 7 }, (_, i) => gridPoint(space, i));
    assert.deepEqual(points.slice(0, 3), [
      { 'freeze.backboneEpochs': 0, 'paramGroups.head.lrMultiplier': 1 },
      { 'freeze.backboneEpochs': 0, 'paramGroups.head.lrMultiplier': 10 },
      { 'freeze.backboneEpochs': 2, 'paramGroups.head.lrMultiplier': 1 },
    ]);
    assert.equal(points[6], null);
  });

  it('draws log-uniform values uniformly in the logarithm, inside the range', () => {
    const rng = new Rng(1);
    const values = Array.from({ length: 2000 }, () => Number(randomPoint([{ path: 'lr', domain: { type: 'log-uniform', min: 1e-4, max: 1e-1 } }], rng).lr));
    assert.ok(values.every((v) => v >= 1e-4 && v <= 1e-1));
    const belowMillesimal = values.filter((v) => v < 1e-3).length / values.length;
    assert.ok(Math.abs(belowMillesimal - 1 / 3) < 0.05, `a third of the draws lie in [1e-4, 1e-3), found ${belowMillesimal}`);
  });

  it('keeps integer and categorical TPE proposals inside their domains', () => {
    const space: SearchSpace = [
      { path: 'n', domain: { type: 'int', min: 2, max: 10, step: 2 } },
      { path: 'arch', domain: { type: 'choice', values: ['a', 'b', 'c'] } },
    ];
    const history: Observation[] = Array.from({ length: 12 }, (_, i) => ({ params: { n: 2 + 2 * (i % 5), arch: 'abc'[i % 3] }, loss: i }));
    for (let i = 0; i < 20; i++) {
      const p = suggestTpe(space, history, new Rng(i), { candidates: 16 });
      assert.ok([2, 4, 6, 8, 10].includes(Number(p.n)), `n=${p.n}`);
      assert.ok(['a', 'b', 'c'].includes(String(p.arch)));
    }
  });
});
