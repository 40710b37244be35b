/**
 * Where the next trial's parameters come from: a grid, seeded random search, or TPE. Every algorithm is a
 * pure function of (trial index, finished trials), so a resumed sweep proposes what the first run would.
 */
import { Rng } from '../common';
import type { AlgorithmSpec, ParameterDomain, ParamValue } from './spec-schema';
import { finiteValues, type Observation, type SearchSpace, type TrialParams } from './sweep-spec';
import { suggestTpe } from './tpe';

/** Proposes trial parameters. */
export interface SearchAlgorithm {
  /** Parameters of trial `index`, or null when the algorithm has nothing more to propose (a finished grid). */
  suggest(index: number, history: readonly Observation[]): TrialParams | null;
}

/** The algorithm a sweep spec names. */
export function createSearch(algorithm: AlgorithmSpec, space: SearchSpace): SearchAlgorithm {
  switch (algorithm.type) {
    case 'grid':
      return { suggest: (index) => gridPoint(space, index) };
    case 'random':
      return { suggest: (index) => randomPoint(space, new Rng(`random:${algorithm.seed}:${index}`)) };
    case 'tpe':
      return {
        suggest: (index, history) => {
          const rng = new Rng(`tpe:${algorithm.seed}:${index}`);
          if (index < algorithm.startupTrials || history.length < 2) return randomPoint(space, rng);
          return suggestTpe(space, history, rng, { candidates: algorithm.candidates });
        },
      };
  }
}

/** Point `index` of the grid, the last parameter varying fastest; null past the end. */
export function gridPoint(space: SearchSpace, index: number): TrialParams | null {
  const axes = space.map(({ path, domain }) => ({ path, values: finiteValues(domain) }));
  const size = axes.reduce((n, a) => n * a.values.length, 1);
  if (index >= size) return null;
  const out: TrialParams = {};
  let rest = index;
  for (let k = axes.length - 1; k >= 0; k--) {
    const { path, values } = axes[k];
    out[path] = values[rest % values.length];
    rest = Math.floor(rest / values.length);
  }
  return Object.fromEntries(space.map(({ path }) => [path, out[path]]));
}

/** One independent draw per parameter (log-uniform ranges uniform in the logarithm). */
export function randomPoint(space: SearchSpace, rng: Rng): TrialParams {
  const out: TrialParams = {};
  for (const { path, domain } of space) out[path] = sampleDomain(domain, rng);
  return out;
}

function sampleDomain(domain: ParameterDomain, rng: Rng): ParamValue {
  switch (domain.type) {
    case 'choice':
      return domain.values[rng.int(domain.values.length)];
    case 'int':
      return domain.min + domain.step * rng.int(Math.floor((domain.max - domain.min) / domain.step) + 1);
    case 'uniform':
      return rng.uniform(domain.min, domain.max);
    case 'log-uniform':
      return Math.exp(rng.uniform(Math.log(domain.min), Math.log(domain.max)));
  }
}
