import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, createCoordinatorClient, grpcChannelCredentials, unaryCall, withRpcRetry } from '../common';
import type { ScaleResponse } from '../proto';
import { tlsDirOption, tlsFromFlag } from './tls-options';
import { scaleStatefulSet } from './scale-kubernetes';

/** How long one Scale call may take. */
const SCALE_DEADLINE_MS = 10_000;

function parseWorkers(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a whole number of workers >= 1, got '${value}'`);
  return n;
}

const SCALE_HELP = `
Where the number goes:
  --coordinator HOST:PORT   The coordinator records it (shardwise_desired_workers) and announces it on the
                            job's NATS bus. A launcher acts on it: \`shardwise cluster\` starts workers or
                            drains the newest. With no launcher listening (workers started by hand, a cluster
                            run with --no-bus), nothing is started or stopped: the count is only recorded and
                            the job trains on with the workers it has (waiting while fewer than minWorkers).
  without --coordinator     Kubernetes: patches the scale of the workers' StatefulSet (--statefulset, or
                            $SHARDWISE_WORKER_STATEFULSET) with the kubeconfig's or the pod's credentials, as
                            \`kubectl scale\` does; RBAC must allow get and patch on statefulsets/scale. The
                            StatefulSet controller adds pods or removes the highest ordinals; a removed pod
                            drains (SIGTERM: it finishes its share) before it exits, so no step is lost.
                            With no Kubernetes configuration this fails, naming what it looked for.
Either way, a worker beyond distributed.maxWorkers is refused when it registers.`;

/**
 * \`shardwise scale\`: changes the number of workers, through the coordinator (local launcher) or through
 * the Kubernetes API (the workers' StatefulSet).
 */
export function scaleCommand(): Command {
  return new Command('scale')
    .description('change the number of workers of a running job: through its coordinator, or the Kubernetes API')
    .requiredOption('--workers <n>', 'desired number of workers', parseWorkers)
    .option('--coordinator <host:port>', 'gRPC address of the coordinator (a local cluster)')
    .option('--statefulset <name>', "the workers' StatefulSet (Kubernetes; default $SHARDWISE_WORKER_STATEFULSET)")
    .option('--namespace <ns>', "its namespace (default $SHARDWISE_NAMESPACE, the kubeconfig context's, then the pod's)")
    .addOption(tlsDirOption())
    .option('--operator <name>', 'with --tls-dir: the operator certificate to call Scale with (operators/<name>.crt)', 'admin')
    .option('--kubeconfig <file>', 'kubeconfig (default $KUBECONFIG, ~/.kube/config, then the pod\'s ServiceAccount)')
    .addHelpText('after', SCALE_HELP)
    .action(async (opts) => {
      if (opts.coordinator === undefined) {
        process.stdout.write(`${await scaleStatefulSet(opts)}\n`);
        return;
      }
      if (opts.statefulset !== undefined || opts.kubeconfig !== undefined) {
        throw new ConfigError('--coordinator', 'expected either --coordinator (a local cluster) or the Kubernetes flags, got both');
      }
      const tls = tlsFromFlag(opts.tlsDir, { role: 'operator', name: opts.operator });
      const client = createCoordinatorClient({ target: opts.coordinator, credentials: tls && grpcChannelCredentials(tls) });
      try {
        const res = await withRpcRetry('Coordinator/Scale', () =>
          unaryCall<ScaleResponse>('Coordinator/Scale', { deadlineMs: SCALE_DEADLINE_MS }, (md, o, cb) =>
            client.scale({ desiredWorkers: opts.workers }, md, o, cb)),
        );
        process.stdout.write(`desired workers: ${res.desiredWorkers} (active now: ${res.activeWorkers})\n`);
      } finally {
        client.close();
      }
    });
}
