/**
 * Tree-structured Parzen Estimator (Bergstra et al., "Algorithms for Hyper-Parameter Optimization",
 * NeurIPS 2011), as hyperopt and Optuna implement it. No well-kept JavaScript TPE exists, so this is one
 * documented implementation, tested against seeded random search on the Branin function.
 *
 * The finished trials are split at the gamma-quantile of their loss into "good" (below) and "bad". Each
 * parameter gets two densities, l(x) from the good values and g(x) from the bad, each an equal-weight
 * mixture of truncated normals centred on the observed values plus one wide prior component; a
 * component's width is the larger gap to its neighbours (hyperopt's adaptive Parzen estimator), clipped
 * to [range / min(100, n + 1), range]. Categorical parameters use counts plus a uniform prior. `candidates`
 * points are drawn from l and the one with the highest l(x) / g(x) (expected improvement under this
 * model) is proposed. Parameters are modelled independently, as in hyperopt's default.
 */
import type { Rng } from '../common';
import type { ParameterDomain, ParamValue } from './spec-schema';
import type { Observation, SearchSpace, TrialParams } from './sweep-spec';

/** Knobs of {@link suggestTpe}. */
export interface TpeOptions {
  /** Points drawn from l(x); the best l/g ratio wins. */
  candidates: number;
}

// Optuna's default split: the best 10% of trials, at most 25, at least 1.
function goodCount(n: number): number {
  return Math.max(1, Math.min(Math.ceil(0.1 * n), 25));
}

/** The next parameters under TPE, given at least two finished trials. */
export function suggestTpe(space: SearchSpace, history: readonly Observation[], rng: Rng, options: TpeOptions): TrialParams {
  // Stable sort: equal losses keep trial order, so the split never depends on sort internals.
  const sorted = history.map((o, i) => ({ o, i })).sort((a, b) => a.o.loss - b.o.loss || a.i - b.i).map((x) => x.o);
  const nGood = goodCount(sorted.length);
  const good = sorted.slice(0, nGood);
  const bad = sorted.slice(nGood);
  const models = space.map(({ path, domain }) => ({
    path,
    l: estimator(domain, good.map((o) => o.params[path])),
    g: estimator(domain, bad.map((o) => o.params[path])),
  }));
  let best: TrialParams = {};
  let bestScore = -Infinity;
  for (let c = 0; c < options.candidates; c++) {
    const point: TrialParams = {};
    let score = 0;
    for (const { path, l, g } of models) {
      const value = l.sample(rng);
      point[path] = value;
      score += l.logPdf(value) - g.logPdf(value);
    }
    if (score > bestScore) {
      bestScore = score;
      best = point;
    }
  }
  return best;
}

interface Density {
  sample(rng: Rng): ParamValue;
  logPdf(value: ParamValue): number;
}

function estimator(domain: ParameterDomain, values: readonly ParamValue[]): Density {
  if (domain.type === 'choice') return categorical(domain.values, values);
  const log = domain.type === 'log-uniform';
  const half = domain.type === 'int' ? domain.step / 2 : 0;
  const lo = (log ? Math.log(domain.min) : domain.min) - half;
  const hi = (log ? Math.log(domain.max) : domain.max) + half;
  const toX = (v: ParamValue): number => (log ? Math.log(Number(v)) : Number(v));
  const mixture = parzen(values.map(toX), lo, hi);
  return {
    sample: (rng) => {
      const x = mixture.sample(rng);
      if (log) return Math.exp(x);
      if (domain.type === 'int') {
        const k = Math.round((x - domain.min) / domain.step);
        return Math.min(domain.max, Math.max(domain.min, domain.min + k * domain.step));
      }
      return x;
    },
    logPdf: (v) => mixture.logPdf(toX(v)),
  };
}

function categorical(choices: readonly ParamValue[], values: readonly ParamValue[]): Density {
  const k = choices.length;
  const weights = choices.map((c) => (values.filter((v) => v === c).length + 1 / k) / (values.length + 1));
  return {
    sample: (rng) => {
      let u = rng.next();
      for (let i = 0; i < k; i++) {
        u -= weights[i];
        if (u < 0) return choices[i];
      }
      return choices[k - 1];
    },
    logPdf: (v) => Math.log(weights[choices.indexOf(v)] ?? 1e-12),
  };
}

interface Mixture {
  sample(rng: Rng): number;
  logPdf(x: number): number;
}

/** Equal-weight truncated-normal mixture on [lo, hi]: one component per point plus the prior. */
export function parzen(points: readonly number[], lo: number, hi: number): Mixture {
  const range = hi - lo;
  const mus = [...points, (lo + hi) / 2];
  const order = mus.map((m, i) => ({ m, i })).sort((a, b) => a.m - b.m);
  const sigmas = new Array<number>(mus.length);
  const minSigma = range / Math.min(100, mus.length + 1);
  order.forEach(({ m, i }, r) => {
    const left = m - (r > 0 ? order[r - 1].m : lo);
    const right = (r < order.length - 1 ? order[r + 1].m : hi) - m;
    sigmas[i] = Math.min(range, Math.max(minSigma, left, right));
  });
  sigmas[mus.length - 1] = range; // the prior is wide
  const mass = mus.map((m, i) => normalCdf((hi - m) / sigmas[i]) - normalCdf((lo - m) / sigmas[i]));
  return {
    sample: (rng) => {
      const i = rng.int(mus.length);
      for (let attempt = 0; attempt < 100; attempt++) {
        const x = mus[i] + sigmas[i] * gaussian(rng);
        if (x >= lo && x <= hi) return x;
      }
      return rng.uniform(lo, hi);
    },
    logPdf: (x) => {
      let p = 0;
      for (let i = 0; i < mus.length; i++) {
        const z = (x - mus[i]) / sigmas[i];
        p += Math.exp(-0.5 * z * z) / (sigmas[i] * Math.sqrt(2 * Math.PI) * Math.max(mass[i], 1e-12));
      }
      return Math.log(Math.max(p / mus.length, 1e-300));
    },
  };
}

function gaussian(rng: Rng): number {
  const u = Math.max(rng.next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

// Abramowitz and Stegun 7.1.26 (error below 1.5e-7): ample for mixture weights.
function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return 0.5 * (1 + (z >= 0 ? erf : -erf));
}
