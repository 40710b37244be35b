/** Picks the executor of a sweep: the spec's `executor.type`, or what `shardwise sweep --executor` says. */
import type { ExecutorType } from './spec-schema';
import type { TrialExecutor } from './executor';
import { KubernetesExecutor, type KubernetesExecutorOptions } from './kubernetes-executor';
import { LocalExecutor } from './local-executor';
import type { SweepSpec } from './sweep-spec';

/** What `shardwise sweep` chooses the executor by. */
export interface ExecutorChoice extends KubernetesExecutorOptions {
  /** @default the spec's executor.type */
  type?: ExecutorType;
  /** The `--data` folder (the Kubernetes executor checks its pods can see it). */
  dataDir?: string;
}

/** The executor `choice` (or the spec) names: local processes, or Jobs through the Kubernetes API. */
export async function createExecutor(spec: SweepSpec, choice: ExecutorChoice = {}): Promise<TrialExecutor> {
  const type = choice.type ?? spec.executor;
  return type === 'kubernetes' ? KubernetesExecutor.connect(spec, choice) : new LocalExecutor(spec.cores);
}
