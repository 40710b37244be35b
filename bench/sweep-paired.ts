/**
 * Two finished trials of a sweep, compared image by image on the sweep's own validation split: how many
 * images only the first gets right, how many only the second, and McNemar's exact test on those. When the
 * grid's top two end a few images apart, this says whether "the grid's best" is a ranking or a coin toss,
 * which is what `make bench-sweep`'s same_best is judged against.
 *
 *   node --import tsx bench/sweep-paired.ts --sweep runs/bench-sweep/STAMP/grid --data DIR t000 t001
 *
 * Each trial's exported model (raw pixels in, probabilities out) is run on the validation images; its top-1
 * must equal the one the trial recorded at its last epoch, or the comparison is of something else and fails.
 */
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import YAML from 'yaml';
import { type Cifar10Images, compileJobSpec, initBackend, loadLayersModelFrom, loadTrainVal, makeBatch } from '../common';
import { readSweepState, trialModelDir, type TrialRecord } from '../sweep';

const BATCH = 256;

/** Per validation image: did the trial's final model rank the true class first. */
async function correctness(trial: TrialRecord, val: Cifar10Images): Promise<boolean[]> {
  const dir = trialModelDir(trial);
  if (dir === undefined) throw new Error(`trial ${trial.id}: expected an exported model under ${trial.runDirs.join(', ')}, found none`);
  const model = await loadLayersModelFrom(dir);
  const out: boolean[] = [];
  for (let start = 0; start < val.count; start += BATCH) {
    const indices = Array.from({ length: Math.min(BATCH, val.count - start) }, (_, k) => start + k);
    const batch = makeBatch(val, indices);
    const predicted = tf.tidy(() => (model.predict(tf.tensor4d(batch.x, [indices.length, 32, 32, 3])) as tf.Tensor2D).argMax(1).dataSync());
    indices.forEach((_, k) => out.push(predicted[k] === batch.y[k]));
  }
  model.dispose();
  const top1 = out.filter(Boolean).length / out.length;
  const recorded = trial.results.at(-1)!.val.top1;
  if (Math.abs(top1 - recorded) > 1e-9) {
    throw new Error(`trial ${trial.id}: its model gives top-1 ${top1} on the validation split, the trial recorded ${recorded}`);
  }
  return out;
}

/** Two-sided exact McNemar p-value: a binomial(onlyA + onlyB, 1/2) test of the discordant pairs. */
export function mcnemarExact(onlyA: number, onlyB: number): number {
  const n = onlyA + onlyB;
  if (n === 0) return 1;
  let logC = 0; // log C(n, i), built up from i = 0
  let tail = 0;
  for (let i = 0; i <= Math.min(onlyA, onlyB); i++) {
    if (i > 0) logC += Math.log(n - i + 1) - Math.log(i);
    tail += Math.exp(logC - n * Math.LN2);
  }
  return Math.min(1, 2 * tail);
}

async function main(): Promise<void> {
  const cmd = new Command().requiredOption('--sweep <dir>').option('--data <dir>').argument('<a>').argument('<b>').parse();
  const opts = cmd.opts();
  const state = readSweepState(opts.sweep);
  if (!state) throw new Error(`expected a sweep state in ${opts.sweep}`);
  const [a, b] = cmd.args.map((id) => {
    const t = state.trials.find((x) => x.id === id);
    if (t === undefined) throw new Error(`expected a trial of ${opts.sweep} (${state.trials.map((x) => x.id).join(', ')}), got ${id}`);
    return t;
  });
  const job = compileJobSpec(YAML.parse(fs.readFileSync(a.jobFile, 'utf8')), a.jobFile);
  await initBackend({ prefer: 'wasm' });
  const { val } = await loadTrainVal({ ...job.data, dir: opts.data ?? job.data.dir }, job.seed);
  const [ca, cb] = [await correctness(a, val), await correctness(b, val)];
  const onlyA = ca.filter((x, i) => x && !cb[i]).length;
  const onlyB = cb.filter((x, i) => x && !ca[i]).length;
  console.log(`bench-sweep-paired a=${a.id} b=${b.id} val_images=${val.count} a_top1=${a.results.at(-1)!.val.top1.toFixed(4)} ` +
    `b_top1=${b.results.at(-1)!.val.top1.toFixed(4)} only_a=${onlyA} only_b=${onlyB} mcnemar_p=${mcnemarExact(onlyA, onlyB).toFixed(3)}`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
