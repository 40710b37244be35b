import type { OptimizerSpec } from '../job';
import { ConfigError } from '../errors';
import { AdamOptimizer } from './adam';
import type { Optimizer } from './optimizer-base';
import { SgdOptimizer } from './sgd';

export type { Optimizer, OptimizerState, VariableOptimizerState } from './optimizer-base';

/**
 * Builds the optimizer a job spec names. Learning rates are not part of the optimizer: the caller
 * passes them per variable on every `apply` (schedules, warm-up, parameter groups).
 */
export function createOptimizer(spec: OptimizerSpec): Optimizer {
  if (!(spec.weightDecay >= 0)) throw new ConfigError('optimizer.weightDecay', `expected >= 0, got ${spec.weightDecay}`);
  switch (spec.type) {
    case 'sgd':
      if (!(spec.momentum >= 0)) throw new ConfigError('optimizer.momentum', `expected >= 0, got ${spec.momentum}`);
      if (spec.nesterov && spec.momentum === 0) {
        throw new ConfigError('optimizer.nesterov', 'Nesterov momentum requires optimizer.momentum > 0, got 0');
      }
      return new SgdOptimizer({ momentum: spec.momentum, nesterov: spec.nesterov, weightDecay: spec.weightDecay });
    case 'adam':
    case 'adamw':
      for (const key of ['beta1', 'beta2'] as const) {
        if (!(spec[key] >= 0 && spec[key] < 1)) throw new ConfigError(`optimizer.${key}`, `expected in [0, 1), got ${spec[key]}`);
      }
      if (!(spec.epsilon > 0)) throw new ConfigError('optimizer.epsilon', `expected > 0, got ${spec.epsilon}`);
      return new AdamOptimizer({
        beta1: spec.beta1,
        beta2: spec.beta2,
        epsilon: spec.epsilon,
        weightDecay: spec.weightDecay,
        decoupledWeightDecay: spec.type === 'adamw',
      });
    default: {
      const unknown: never = spec.type;
      throw new ConfigError('optimizer.type', `expected one of sgd, adam, adamw, got ${String(unknown)}`);
    }
  }
}
