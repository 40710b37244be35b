import * as path from 'node:path';
import { type JobSpec, parseJobSpec } from '../../common';
import { writeTinyCifar } from '../coordinator-fake-worker';

/**
 * The smallest distributed job a coordinator under test serves (a tiny CIFAR-like set, small_cnn, one
 * epoch), named `name`, with its runs under `dir`; `distributed` is the YAML flow mapping's extra keys.
 */
export function tinyJobSpec(name: string, dir: string, distributed = ''): JobSpec {
  return parseJobSpec(tinyJobYaml(name, dir, distributed));
}

/** The job file of {@link tinyJobSpec}, for a test that starts `shardwise` with `--job FILE`. */
export function tinyJobYaml(name: string, dir: string, distributed = ''): string {
  const data = writeTinyCifar(64, 5);
  return `
name: ${name}
seed: 1
data: { dir: ${JSON.stringify(data)}, limit: 64, valFraction: 0.15, augment: { rotationDeg: 0 } }
model: { architecture: small_cnn }
training: { epochs: 1, batchSize: 16, microBatchSize: 4, evalBatchSize: 8 }
optimizer: { learningRate: 0.01 }
output: { runsDir: ${JSON.stringify(path.join(dir, 'runs'))} }
distributed: { leaseMs: 60000, stepDeadlineMs: 60000${distributed === '' ? '' : `, ${distributed}`} }
`;
}
