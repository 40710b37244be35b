import { NAMESPACE_ENV, StatefulSetScaler, WORKER_STATEFULSET_ENV } from '../common';
import { AutoscaleRule } from './autoscale-rule';
import type { JobContext } from './job-context';
import { ThroughputWindows } from './throughput-window';
import { scaleJob } from './worker-calls';

/** How often the autoscaler looks at the job's progress. */
const AUTOSCALE_POLL_MS = 250;

/** Where a new worker count goes. */
export interface ScaleActuator {
  /** For the log: `the Kubernetes API (statefulset ns/name)`. */
  readonly description: string;
  scaleTo(workers: number): Promise<void>;
}

/**
 * The same path `shardwise scale` takes: in a cluster (the chart sets $SHARDWISE_WORKER_STATEFULSET),
 * the worker StatefulSet's scale through the Kubernetes API; else the local launcher, through the
 * `scale` event on the job's bus. Either way the coordinator records the desired count (its gauge).
 */
export async function scaleActuator(job: JobContext, env: NodeJS.ProcessEnv = process.env): Promise<ScaleActuator> {
  const statefulSet = env[WORKER_STATEFULSET_ENV];
  if (!statefulSet) {
    return { description: 'the local launcher (a scale event on the job bus)', scaleTo: async (n) => void scaleJob(job, n) };
  }
  const scaler = await StatefulSetScaler.connect({ statefulSet, namespace: env[NAMESPACE_ENV] });
  return {
    description: `the Kubernetes API (statefulset ${scaler.target})`,
    // The StatefulSet first: a refused patch leaves the recorded count as it was.
    scaleTo: async (n) => {
      await scaler.scaleTo(n);
      scaleJob(job, n);
    },
  };
}

/**
 * Applies `distributed.autoscale` while the job runs: measures the job's throughput over windows of
 * `measureSteps` steps at a steady worker count ({@link ThroughputWindows}), feeds the
 * {@link AutoscaleRule}, and hands its decisions to the actuator one at a time. A failed scale (RBAC, a
 * missing StatefulSet) is logged as an error each time it is tried; the job trains on with the workers
 * it has.
 */
export class Autoscaler {
  private timer: NodeJS.Timeout | undefined;
  private readonly windows: ThroughputWindows;
  private busy = false;

  constructor(
    private readonly job: JobContext,
    private readonly rule: AutoscaleRule,
    private readonly actuator: ScaleActuator,
    measureSteps: number,
  ) {
    this.windows = new ThroughputWindows(measureSteps, job.spec.training.batchSize, job.planner.stepsPerEpoch);
  }

  /** Starts polling. */
  start(): void {
    this.timer = setInterval(() => this.tick(), AUTOSCALE_POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    const job = this.job;
    if (job.finished || job.lifecycle.ended) return this.stop();
    const now = job.now();
    const active = job.members.activeWorkers().map((id) => ({ id, lastCountedStep: job.members.session(id)?.lastCountedStep ?? 0 }));
    const measured = this.windows.look({ active, desiredWorkers: job.members.desiredWorkers, step: job.weightsVersion, atMs: now });
    if (measured) {
      this.rule.observe(measured);
      // Every count measured so far: the one-worker rate (the smallest count's) may have just changed.
      for (const [workers, efficiency] of this.rule.efficiencies()) {
        job.telemetry.metrics.autoscaleEfficiency.set({ workers: String(workers) }, efficiency);
      }
    }
    if (this.busy) return;
    const decision = this.rule.decide(job.members.desiredWorkers, now);
    if (!decision) return;
    this.busy = true;
    const from = job.members.desiredWorkers;
    job.log(`autoscale: ${from} -> ${decision.workers} workers through ${this.actuator.description}: ${decision.reason}`);
    this.actuator
      .scaleTo(decision.workers)
      .catch((err: unknown) => job.log(`autoscale: error: scaling to ${decision.workers} workers failed: ${(err as Error).message}`))
      .finally(() => (this.busy = false));
  }
}

/** Starts the autoscaler when the job spec asks for one (`distributed.autoscale`); null otherwise. */
export async function startAutoscaler(job: JobContext, env: NodeJS.ProcessEnv = process.env): Promise<Autoscaler | null> {
  const spec = job.spec.distributed.autoscale;
  if (!spec) return null;
  const actuator = await scaleActuator(job, env);
  job.log(`autoscale: ${spec.minWorkers}-${spec.maxWorkers} workers, adding one while throughput per worker stays at ` +
    `${100 * spec.minEfficiency}% of the one-worker rate or more, ${spec.cooldownMs} ms apart, through ${actuator.description}`);
  const autoscaler = new Autoscaler(job, new AutoscaleRule(spec), actuator, spec.measureSteps);
  autoscaler.start();
  return autoscaler;
}
