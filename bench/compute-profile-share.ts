// Where a worker's unfrozen step spends its time in situ, outside the kernels bench-compute times: the
// share as worker/share-runner.ts computes it (augmentation, one micro-batch of 32 at 64x64 with its
// BatchNorm statistic deltas, the sums copied out of tfjs) and the replica's apply of the reduced sums (the
// fused Adam over ~2.16 M floats, the statistics), on bench-tta's recipe with random images.
// Usage: node --import tsx bench/compute-profile-share.ts [--steps 5] [--kernels]
// Prints `profile-share ... share_ms=.. share_cpu_ms=.. apply_ms=..` with the parts (medians; gc_ms: V8's
// pauses during a share), then,
// with --kernels, the kernels of one share and one apply by self time (kernel-self-time.ts).
import { PerformanceObserver } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import {
  Augmenter, computeGradients, initBackend, makeBatch, microBatchResult, namedVariables, parseJobSpec, Rng, toTensorBatch, totalElementCount,
  type ShareInput,
} from '../common';
import { localSamples, Replica, runTrainShare } from '../worker';
import { instrumentKernels, kernelMsPerStep, printKernels } from './kernel-self-time';

const SIZE = 64;
const MICRO_BATCH = 32;
const WARMUP_STEPS = 2;

/** bench-tta's recipe (bench/tta-inputs.ts), unfrozen from the start, on the model from the zoo. */
const SPEC = parseJobSpec([
  'name: profile-share',
  'data: { augment: { cropPadding: 4, horizontalFlip: true } }',
  `model: { architecture: mobilenet_v1, pretrained: true, inputSize: ${SIZE}, head: linear }`,
  `training: { epochs: 1, batchSize: ${2 * MICRO_BATCH}, microBatchSize: ${MICRO_BATCH} }`,
  'optimizer: { type: adam, learningRate: 0.0001, weightDecay: 0.0001 }',
  'freeze: { backboneEpochs: 0 }',
].join('\n'));

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Milliseconds of `fn`, and its result. */
function timed<T>(fn: () => T): [T, number] {
  const t0 = performance.now();
  const out = fn();
  return [out, performance.now() - t0];
}

async function main(): Promise<void> {
  const opts = new Command()
    .option('--steps <n>', 'timed steps (medians are printed)', (v) => Number.parseInt(v, 10), 5)
    .option('--kernels', 'print the kernels of one share and one apply by self time')
    .parse()
    .opts<{ steps: number; kernels?: boolean }>();
  const backend = await initBackend({ log: () => undefined });
  const replica = await Replica.build(SPEC);
  const rng = new Rng(SIZE);
  const n = MICRO_BATCH;
  const sampleIds = Uint32Array.from({ length: n }, (_, i) => 1000 + i);
  const samples = localSamples(0, [{ id: 0, sampleIds }], {
    sampleIds, images: Uint8Array.from({ length: n * 3072 }, () => rng.int(256)), labels: Uint8Array.from({ length: n }, () => rng.int(10)),
  }, 10);
  const augmenter = new Augmenter(SPEC.data.augment);
  // The replica starts from its own weights with a fresh optimizer (version 0, state current).
  const own = namedVariables(replica.parts);
  replica.loadFull(new Map([...own.backbone, ...own.head].map((v) => [v.originalName, {
    name: v.originalName, dtype: 'float32' as const, shape: [...v.shape] as number[], data: v.read().dataSync() as Float32Array,
  }])), 0, { iterations: 0, variableSteps: {} });
  const share = (step: number) => runTrainShare(replica.parts, {
    samples, augmenter, jobSeed: 0, epoch: 0, globalStep: step, configVersion: 0, backboneFrozen: false, weightsVersion: step,
  }, async () => undefined);
  const apply = (computed: Awaited<ReturnType<typeof share>>, step: number) => {
    const tensors = [...computed.grads, ...computed.statDeltas];
    const vector = new Float32Array(totalElementCount(tensors));
    let at = 0;
    for (const t of tensors) {
      vector.set(t.data as Float32Array, at);
      at += t.data.length;
    }
    const reduced = { key: `k${step}`, step, tensors, gradientTensorCount: computed.grads.length, vector };
    return timed(() => replica.applyReduced(reduced, {
      key: reduced.key, learningRates: { backbone: 1e-4, head: 1e-3 }, sampleCount: n, microBatchCount: 1,
    }, step + 1))[1];
  };
  // The parts of a share, timed alone on the same inputs: augmentation, the bare forward and backward pass,
  // and the whole micro-batch (the pass plus the BatchNorm statistic deltas).
  const input: ShareInput = {
    data: samples.data, microBatches: samples.microBatches, sampleIds: samples.sampleIds, augmenter, jobSeed: 0, epoch: 0,
    globalStep: 0, backboneFrozen: false,
  };
  const mb = samples.microBatches[0];
  const parts = () => {
    const [batch, augmentMs] = timed(() => makeBatch(samples.data, mb.sampleIndices, { augmenter, sampleIds }));
    const t = toTensorBatch(batch);
    const [bare, passMs] = timed(() => computeGradients(replica.parts, t, { backboneFrozen: false, dropoutSeed: 0 }));
    tf.dispose([t.x, t.y, ...bare.grads.values()]);
    const [result, microBatchMs] = timed(() => microBatchResult(replica.parts, input, mb));
    tf.dispose([...result.grads.values(), ...result.movingStatDeltas.values()]);
    return { augmentMs, passMs, microBatchMs };
  };
  let gcMs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMs += e.duration;
  });
  gc.observe({ entryTypes: ['gc'] });
  const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
  let step = 0;
  for (; step < WARMUP_STEPS; step++) apply(await share(step), step);
  const rows: Record<'shareMs' | 'shareCpuMs' | 'gcMs' | 'applyMs' | 'augmentMs' | 'passMs' | 'microBatchMs', number>[] = [];
  for (let i = 0; i < opts.steps; i++, step++) {
    await yieldTurn(); // lets the GC observer report
    const gc0 = gcMs;
    const [cpu0, t0] = [process.cpuUsage(), performance.now()];
    const computed = await share(step);
    const shareMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const applyMs = apply(computed, step);
    await yieldTurn();
    rows.push({ shareMs, shareCpuMs: (cpu.user + cpu.system) / 1000, gcMs: gcMs - gc0, applyMs, ...parts() });
  }
  gc.disconnect();
  const m = (k: keyof (typeof rows)[0]) => median(rows.map((r) => r[k])).toFixed(1);
  console.log(`profile-share size=${SIZE} micro_batch=${MICRO_BATCH} share_ms=${m('shareMs')} share_cpu_ms=${m('shareCpuMs')} ` +
    `pass_ms=${m('passMs')} micro_batch_ms=${m('microBatchMs')} augment_ms=${m('augmentMs')} gc_ms=${m('gcMs')} ` +
    `apply_ms=${m('applyMs')} tensors=${tf.memory().numTensors}`);
  if (opts.kernels) {
    const stats = instrumentKernels(backend.name);
    const computed = await share(step);
    console.log(`# one share: kernel_ms=${kernelMsPerStep(stats, 1).toFixed(1)}`);
    printKernels(stats, 1, 15);
    stats.clear();
    apply(computed, step);
    console.log(`# one apply: kernel_ms=${kernelMsPerStep(stats, 1).toFixed(1)}`);
    printKernels(stats, 1, 15);
  }
  replica.dispose();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
