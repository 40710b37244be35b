import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSweepSpec, parseSweepSpec, SweepSpecError, trialJob } from '../sweep';

const JOB = 'job: { model: { architecture: small_cnn }, training: { epochs: 4 }, optimizer: { learningRate: 0.01 } }';

function problems(text: string): string[] {
  try {
    parseSweepSpec(text);
  } catch (err) {
    assert.ok(err instanceof SweepSpecError, `expected SweepSpecError, got ${err}`);
    return [...err.problems];
  }
  assert.fail('expected the spec to be refused');
}

describe('sweep spec', () => {
  it('fills defaults: grid, maxTrials = grid size, direction from the metric, folder from the name', () => {
    const spec = parseSweepSpec(`name: s\n${JOB}\nparameters:\n  freeze.backboneEpochs: [0, 1]\n  optimizer.learningRate: [0.1, 0.01, 0.001]\nobjective: { metric: val.loss }\n`);
    assert.equal(spec.algorithm.type, 'grid');
    assert.equal(spec.budget.maxTrials, 6);
    assert.equal(spec.objective.direction, 'minimize');
    assert.equal(spec.earlyStopping.type, 'none');
    assert.ok(spec.dir.endsWith(join('runs', 'sweeps', 's')));
  });

  it('executor: kubernetes needs its section, names a bad key or claim there, and keeps what it is given', () => {
    const base = `name: s\n${JOB}\nparameters: { seed: [1] }\nobjective: { metric: val.top1 }\n`;
    assert.deepEqual(problems(`${base}executor: { type: kubernetes }\n`),
      ['executor.kubernetes: required with executor.type kubernetes (the image and the ReadWriteMany sharedVolume of the trial pods)']);
    const k8s = (extra: string): string => `${base}executor:\n  type: kubernetes\n  kubernetes: { image: shardwise:1, sharedVolume: { claimName: sweeps, mountPath: /s }${extra} }\n`;
    assert.deepEqual(problems(k8s(', paralelism: 2')), ["executor.kubernetes: unknown key 'paralelism'"]);
    assert.match(problems(k8s('').replace('claimName: sweeps', 'claimName: Sweeps_1')).join(), /executor\.kubernetes\.sharedVolume\.claimName: expected a Kubernetes name/);
    const spec = parseSweepSpec(k8s(', parallelism: 3'));
    assert.equal(spec.executor, 'kubernetes');
    assert.deepEqual([spec.kubernetes?.parallelism, spec.kubernetes?.sharedVolume.mountPath, spec.kubernetes?.imagePullPolicy], [3, '/s', 'IfNotPresent']);
  });

  it('names an unknown key, at the top level and inside a section', () => {
    assert.deepEqual(problems(`name: s\n${JOB}\nparameters: { seed: [1] }\nobjective: { metric: val.top1 }\nbudgt: {}\n`), ["(top level): unknown key 'budgt'"]);
    assert.deepEqual(problems(`name: s\n${JOB}\nparameters: { seed: [1] }\nobjective: { metric: val.top1 }\nearlyStopping: { type: asha, grace: 1 }\n`),
      ["earlyStopping: unknown key 'grace'"]);
  });

  it('refuses a parameter path the job spec lacks, naming the parameter and the job schema problem', () => {
    const [p] = problems(`name: s\n${JOB}\nparameters: { freeze.backbone_epochs: [1, 2] }\nobjective: { metric: val.top1 }\n`);
    assert.match(p, /parameters\.freeze\.backbone_epochs = 1: the job spec refuses it: freeze: unknown key 'backbone_epochs'/);
  });

  it('refuses a value the job schema refuses, and a range with min >= max', () => {
    assert.match(problems(`name: s\n${JOB}\nparameters: { optimizer.learningRate: { type: log-uniform, min: 0.1, max: 0.01 } }\nobjective: { metric: val.top1 }\nalgorithm: { type: random }\nbudget: { maxTrials: 3 }\n`)[0],
      /parameters\.optimizer\.learningRate: expected min < max, got min 0.1, max 0.01/);
    assert.match(problems(`name: s\n${JOB}\nparameters: { training.epochs: [2, -1] }\nobjective: { metric: val.top1 }\n`)[0],
      /parameters\.training\.epochs = -1: the job spec refuses it: training\.epochs/);
  });

  it('refuses a test-set objective, a continuous range in a grid, and random search without maxTrials', () => {
    assert.match(problems(`name: s\n${JOB}\nparameters: { seed: [1] }\nobjective: { metric: test.top1 }\n`)[0],
      /objective\.metric: expected a validation metric \(val\.top1, val\.top5, val\.loss\); test-set metrics are reported/);
    assert.match(problems(`name: s\n${JOB}\nparameters: { optimizer.learningRate: { type: uniform, min: 0.001, max: 0.1 } }\nobjective: { metric: val.top1 }\n`)[0],
      /grid search needs a finite list \(values or an int range\), got a uniform range/);
    assert.match(problems(`name: s\n${JOB}\nparameters: { seed: [1, 2] }\nobjective: { metric: val.top1 }\nalgorithm: { type: random }\n`)[0],
      /budget\.maxTrials: required for random search/);
  });

  it('reads the base job from a file relative to the sweep file, and names trial jobs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sweep-spec-'));
    writeFileSync(join(dir, 'base.yaml'), 'model: { architecture: small_cnn }\ntraining: { epochs: 3 }\noptimizer: { learningRate: 0.01 }\n');
    writeFileSync(join(dir, 'sweep.yaml'), 'name: filed\njob: base.yaml\nparameters: { paramGroups.head.lrMultiplier: [1, 10] }\nobjective: { metric: val.top1 }\n');
    const spec = loadSweepSpec(join(dir, 'sweep.yaml'));
    const job = trialJob(spec, { 'paramGroups.head.lrMultiplier': 1 }, 7);
    assert.equal(job.name, 'filed-t007');
    assert.equal(job.paramGroups.head.lrMultiplier, 1);
    assert.equal(job.training.epochs, 3);
    assert.match(problems(`name: s\njob: /nonexistent/base.yaml\nparameters: { seed: [1] }\nobjective: { metric: val.top1 }\n`)[0], /job: cannot read the base job/);
  });
});
