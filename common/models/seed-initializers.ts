/**
 * Gives every random initialiser in a Keras topology JSON an explicit seed.
 *
 * Converted Keras models carry `"seed": null` in their initialisers, so a model rebuilt from its topology
 * alone (the from-scratch baseline) would start from `Math.random` - not reproducible from the job seed.
 */
import { Rng } from '../random';

/** Initialiser classes whose output depends on a seed (Keras and tfjs spellings). */
const RANDOM_INITIALIZERS = new Set([
  'VarianceScaling', 'RandomNormal', 'RandomUniform', 'TruncatedNormal', 'Orthogonal',
  'GlorotNormal', 'GlorotUniform', 'HeNormal', 'HeUniform', 'LeCunNormal', 'LeCunUniform',
  'glorot_normal', 'glorot_uniform', 'he_normal', 'he_uniform', 'lecun_normal', 'lecun_uniform',
  'random_normal', 'random_uniform', 'truncated_normal', 'orthogonal',
]);

/**
 * Returns a deep copy of `topology` in which every `*_initializer` that draws random numbers has
 * `config.seed` set from `rng`, in document order (so the same topology and seed give the same weights).
 */
export function seedInitializers<T>(topology: T, rng: Rng): T {
  const copy = structuredClone(topology);
  visit(copy, rng);
  return copy;
}

function visit(node: unknown, rng: Rng): void {
  if (Array.isArray(node)) {
    for (const item of node) visit(item, rng);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const obj = node as Record<string, unknown>;
  for (const [key, value] of Object.entries(obj)) {
    if (key.endsWith('_initializer') && typeof value === 'object' && value !== null) {
      const init = value as { class_name?: unknown; config?: Record<string, unknown> };
      if (typeof init.class_name === 'string' && RANDOM_INITIALIZERS.has(init.class_name)) {
        init.config = { ...(init.config ?? {}), seed: rng.uint32() };
      }
      continue;
    }
    visit(value, rng);
  }
}
