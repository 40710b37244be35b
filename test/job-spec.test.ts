import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobSpecError, loadJobSpec, parseJobSpec } from '../common/job';

const MINIMAL = 'model: {architecture: mobilenet_v1}\ntraining: {epochs: 3}\noptimizer: {learningRate: 0.01}\n';

function problemsOf(text: string, overrides: string[] = []): readonly string[] {
  try {
    parseJobSpec(text, '<test>', overrides);
  } catch (err) {
    assert.ok(err instanceof JobSpecError, `expected JobSpecError, got ${err}`);
    return err.problems;
  }
  assert.fail('expected the spec to be rejected');
}

describe('job spec', () => {
  it('fills every default of a minimal spec', () => {
    const spec = parseJobSpec(MINIMAL);
    assert.equal(spec.training.batchSize, 32);
    assert.equal(spec.paramGroups.head.lrMultiplier, 10);
    assert.equal(spec.paramGroups.backbone.lrMultiplier, 1);
    assert.equal(spec.data.augment.cropPadding, 4);
    assert.equal(spec.schedule.plateau.patience, 2);
    assert.equal(spec.model.pretrained, true);
    assert.equal(spec.optimizer.weightDecay, 0);
  });

  it('derives defaults that depend on other fields', () => {
    assert.equal(parseJobSpec(MINIMAL, '<t>', ['optimizer.type=adamw']).optimizer.weightDecay, 0.01);
    assert.equal(parseJobSpec(MINIMAL, '<t>', ['model.architecture=small_cnn']).model.pretrained, false);
    assert.equal(parseJobSpec(MINIMAL).training.microBatchSize, 16);
    assert.equal(parseJobSpec(MINIMAL, '<t>', ['training.batchSize=8']).training.microBatchSize, 8);
    // The largest divisor up to 16, so that a full step's micro-batches are equal: 30 = 2 x 15, 45 = 3 x 15.
    assert.equal(parseJobSpec(MINIMAL, '<t>', ['training.batchSize=30']).training.microBatchSize, 15);
    assert.equal(parseJobSpec(MINIMAL, '<t>', ['training.batchSize=45']).training.microBatchSize, 15);
    assert.equal(parseJobSpec(MINIMAL, '<t>', ['training.batchSize=12']).training.microBatchSize, 12);
    assert.deepEqual(problemsOf(MINIMAL, ['training.batchSize=34']), [
      'training.microBatchSize: required for training.batchSize 34, which has no divisor from 8 to 16 to split it ' +
        'into equal micro-batches (divisors: 1, 2, 17, 34)',
    ]);
    assert.equal(parseJobSpec(MINIMAL, '<t>', ['training.batchSize=34', 'training.microBatchSize=17']).training.microBatchSize, 17);
  });

  it('names the field, the expected type and the value of a wrong-type entry', () => {
    assert.deepEqual(problemsOf(MINIMAL.replace('epochs: 3', 'epochs: three')), ['training.epochs: expected a number, got "three"']);
    assert.deepEqual(problemsOf(MINIMAL, ['training.batchSize="32"']), ['training.batchSize: expected a number, got "32"']);
    assert.deepEqual(problemsOf(MINIMAL.replace('epochs: 3', 'epochs: 2.5')), ['training.epochs: expected an integer, got 2.5']);
    assert.deepEqual(problemsOf(MINIMAL, ['optimizer.learningRate=abc']), ['optimizer.learningRate: expected a number, got "abc"']);
    assert.deepEqual(problemsOf(MINIMAL, ['training=5']), ['training: expected a mapping, got 5']);
  });

  it('refuses a batch size that micro-batches cannot split evenly, naming both numbers', () => {
    assert.deepEqual(problemsOf(MINIMAL, ['training.batchSize=30', 'training.microBatchSize=8']), [
      'training.batchSize: 30 is not a multiple of training.microBatchSize 8; every micro-batch must hold the same ' +
        'number of images, since it is the unit of BatchNorm statistics (divisors of 30: 1, 2, 3, 5, 6, 10, 15, 30)',
    ]);
  });

  it('accepts JSON as well as YAML', () => {
    const json = JSON.stringify({ model: { architecture: 'resnet18' }, training: { epochs: 1 }, optimizer: { learningRate: 0.1 } });
    assert.equal(parseJobSpec(json).model.architecture, 'resnet18');
  });

  it('rejects an unknown key, naming it and its section', () => {
    assert.deepEqual(problemsOf(MINIMAL + 'freeze: {backboneEpoch: 2}\n'), ["freeze: unknown key 'backboneEpoch'"]);
    assert.deepEqual(problemsOf(MINIMAL + 'optimiser: {}\n'), ["(top level): unknown key 'optimiser'"]);
  });

  it('rejects a negative learning rate and names the field', () => {
    const problems = problemsOf(MINIMAL, ['optimizer.learningRate=-0.1']);
    assert.equal(problems.length, 1);
    assert.match(problems[0], /^optimizer\.learningRate: .*>0/);
  });

  it('rejects an unknown model name, listing the valid ones', () => {
    const [problem] = problemsOf(MINIMAL, ['model.architecture=mobilenet_v9']);
    assert.match(problem, /^model\.architecture: .*"mobilenet_v1".*"resnet18"/);
  });

  it('reports every problem at once, required fields included', () => {
    const problems = problemsOf('model: {architecture: layers, inputSize: 48}\n');
    assert.deepEqual(problems, [
      'model.inputSize: Invalid number: must be a multiple of 32, got 48',
      'training: required',
      'optimizer: required',
    ]);
  });

  it('checks rules across fields', () => {
    assert.deepEqual(problemsOf('model: {architecture: layers}\ntraining: {epochs: 2}\noptimizer: {learningRate: 1}'), [
      "model.path: required when model.architecture is 'layers' (a model.json path or URL)",
    ]);
    assert.match(problemsOf(MINIMAL, ['model.architecture=resnet18', 'model.pretrained=true'])[0], /no pretrained weights/);
    assert.match(problemsOf(MINIMAL, ['distributed.minWorkers=3', 'distributed.maxWorkers=2'])[0], /must not exceed distributed\.maxWorkers/);
    assert.match(problemsOf(MINIMAL, ['distributed.leaseMs=500'])[0], /must exceed distributed\.heartbeatIntervalMs/);
    assert.match(problemsOf(MINIMAL, ['training.microBatchSize=64'])[0], /must not exceed training\.batchSize/);
    assert.match(problemsOf(MINIMAL, ['freeze.backboneEpochs=3', 'freeze.unfreezeLearningRate=0.001'])[0], /never unfreezes/);
  });

  it('rejects malformed text and overrides with a clear message', () => {
    assert.match(problemsOf('model: [')[0], /^not valid YAML or JSON at line 1/);
    assert.match(problemsOf('- 1\n- 2\n')[0], /got a list/);
    assert.match(problemsOf(MINIMAL, ['nokey'])[0], /expected key\.path=value/);
    assert.match(problemsOf(MINIMAL, ['training.epochs.x=1'])[0], /'epochs' is not a section/);
  });

  it('names the file it could not read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'shardwise-spec-'));
    assert.throws(() => loadJobSpec(join(dir, 'missing.yaml')), /missing\.yaml[\s\S]*ENOENT/);
    writeFileSync(join(dir, 'job.yaml'), MINIMAL);
    assert.equal(loadJobSpec(join(dir, 'job.yaml'), ['seed=7']).seed, 7);
  });
});

describe('job spec: distributed.plannedExchange', () => {
  it('is on by default with the allreduce, off with the parameter server or when asked, refused with it or as a non-boolean', () => {
    assert.equal(parseJobSpec(MINIMAL).distributed.plannedExchange, true);
    assert.equal(parseJobSpec(MINIMAL, '<t>', ['distributed.plannedExchange=false']).distributed.plannedExchange, false);
    assert.equal(parseJobSpec(MINIMAL, '<t>', ['distributed.exchange=parameter-server']).distributed.plannedExchange, false);
    assert.deepEqual(problemsOf(MINIMAL, ['distributed.plannedExchange=true', 'distributed.exchange=parameter-server']),
      ["distributed.plannedExchange: plans the allreduce, expected exchange 'allreduce', got 'parameter-server'"]);
    assert.match(problemsOf(MINIMAL, ['distributed.plannedExchange=sometimes']).join('\n'), /distributed\.plannedExchange/);
  });
});
