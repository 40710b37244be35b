import { Command, InvalidArgumentError } from 'commander';
import { createCoordinatorClient, unaryCall, withRpcRetry } from '../common';
import type { ScaleResponse } from '../proto';

/** How long one Scale call may take. */
const SCALE_DEADLINE_MS = 10_000;

function parseWorkers(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a whole number of workers >= 1, got '${value}'`);
  return n;
}

/**
 * `shardwise scale`: asks the coordinator for a number of workers. It records it, updates the
 * `shardwise_desired_workers` gauge and publishes a `scale` event that launchers act on.
 */
export function scaleCommand(): Command {
  return new Command('scale')
    .description('change the number of workers a distributed job asks for')
    .requiredOption('--coordinator <host:port>', 'gRPC address of the coordinator')
    .requiredOption('--workers <n>', 'desired number of workers', parseWorkers)
    .action(async (opts) => {
      const client = createCoordinatorClient({ target: opts.coordinator });
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
