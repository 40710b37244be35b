/**
 * Real sweeps end to end: real `shardwise train --local` processes on a generated CIFAR-format dataset.
 * One sweep exercises early stopping and a forked trial (checked bit-identical to the same trial run
 * alone); another is interrupted with SIGINT and continued, redoing no finished trial.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeCifar10Records, readEpochCheckpointInfo } from '../common';
import {
  decideAtRung, FailureBudgetError, LocalExecutor, parseSweepSpec, readSweepState, runSweep, type RunSweepOptions, SWEEP_LOCK_FILE, type SweepSpec, type SweepState,
  sweepSavings, trialCores, writeSweepReport,
} from '../sweep';
import { signalImages, writeSignalCifar } from './support/cluster-data';
import { compiledShardwise } from './support/compiled-shardwise';
import { sweepYaml } from './support/sweep-yaml';

/** `shardwise sweep` and every trial it starts run the compiled build (quicker to start than tsx). */
function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { command, args: base } = compiledShardwise();
  return new Promise((done) => {
    execFile(command, [...base, ...args], (err, stdout, stderr) => done({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });
}

async function until(what: string, check: () => boolean, timeoutMs = 90_000): Promise<void> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('sweep end to end (real trial processes)', function () {
  this.timeout(240_000);
  const root = mkdtempSync(join(tmpdir(), 'sweep-e2e-'));
  const data = join(root, 'data');
  /** In-process sweeps: trials on the local executor, started from the compiled build. */
  const locally = (spec: SweepSpec, more: Partial<RunSweepOptions> = {}): RunSweepOptions =>
    ({ dataDir: data, backend: 'wasm', pollMs: 200, executor: () => Promise.resolve(new LocalExecutor(spec.cores, compiledShardwise())), ...more });

  before(() => {
    mkdirSync(data);
    writeSignalCifar(data, 160, 1);
    writeFileSync(join(data, 'test_batch.bin'), encodeCifar10Records(signalImages(40, 9)));
  });

  it('stops trials at a rung, forks a trial from a shared prefix, ends it bit-identical to the trial run alone, and reports', async () => {
    // t000 (lr 3e-3, 1 frozen) t001 (3e-3, 2 frozen: shares epoch 1 with t000) t002 (1e-6, 1) t003 (1e-6, 2: shares with t002).
    const spec = parseSweepSpec(sweepYaml('es-fork', join(root, 'sweeps'), `parameters:
  optimizer.learningRate: [0.003, 0.000001]
  freeze.backboneEpochs: [1, 2]
earlyStopping: { type: asha, gracePeriod: 1, reductionFactor: 3 }
`, 3, true));
    const { state, interrupted } = await runSweep(spec, locally(spec));
    assert.equal(interrupted, false);
    const [t0, t1, t2, t3] = state.trials;
    assert.deepEqual(state.trials.map((t) => t.state), ['completed', 'completed', 'stopped', 'stopped']);
    // Stopped trials are kept, with their results up to the rung and the reason.
    assert.equal(t2.results.length, 1);
    assert.match(t2.decisions[0].reason, /val\.loss .* outside the top 1\/3/);
    // Deterministic: every decision is what the rule gives on the recorded results of the earlier trials.
    for (const t of state.trials) {
      for (const d of t.decisions) assert.deepEqual(decideAtRung(spec.earlyStopping, spec.objective, t, state.trials.slice(0, t.index), d.rung), d);
    }
    // Sharing: t001 took epoch 1 over from t000 and trained 2; t003 trained nothing (stopped on the shared epoch).
    assert.deepEqual(t1.fork, { from: 't000', epochs: 1 });
    assert.deepEqual(t1.results.map((r) => r.ranBy), ['t000', 't001', 't001']);
    assert.deepEqual(t3.fork, { from: 't002', epochs: 1 });
    assert.equal(t3.results.filter((r) => r.ranBy === 't003').length, 0);
    assert.deepEqual(sweepSavings(state), {
      trials: 4, naiveTrialEpochs: 12, runTrialEpochs: 6, sharedTrialEpochs: 2, stoppedTrialEpochs: 4, savedFraction: 0.5,
    });
    assert.deepEqual(t0.results[0], { ...t1.results[0] });
    // The test set is reported beside validation, named as such, and the decisions above used validation only.
    assert.ok(state.trials.every((t) => t.results.every((r) => r.test !== undefined && Number.isFinite(r.test.loss))));
    const report = await writeSweepReport(spec, state);
    const md = readFileSync(join(report, 'results.md'), 'utf8');
    assert.match(md, /computed on the validation split/);
    assert.match(md, /Test-set metrics \(CIFAR-10 test_batch\.bin\) are reported beside it and were never used to choose/);
    assert.match(md, /\| trial \| optimizer\.learningRate \| freeze\.backboneEpochs \| epoch \| val\.loss \| test\.loss \(reported only\) \| state \| note \|/);
    assert.match(readFileSync(join(report, 'results.csv'), 'utf8').split('\n')[0], /,val_loss,val_top1,val_top5,objective,test_loss,test_top1,test_top5,/);
    // The forked trial, run alone from scratch, ends with the same weights to the bit.
    const alone = await run(['train', '--local', '--job', t1.jobFile, '--data', data, '--runs-dir', join(root, 'alone'), '--backend', 'wasm']);
    assert.equal(alone.code, 0, alone.stderr);
    const aloneDir = join(root, 'alone', readdirSync(join(root, 'alone'))[0]);
    const aloneHash = (JSON.parse(readFileSync(join(aloneDir, 'summary.json'), 'utf8')) as { weightsHash: string }).weightsHash;
    assert.equal(readEpochCheckpointInfo(t1.checkpoints[3]).weightsHash, aloneHash);
  });

  it('continues after SIGINT and after SIGKILL mid-trial without redoing finished work; a second sweep on a running one refuses, naming the lock', async () => {
    const file = join(root, 'resume.yaml');
    writeFileSync(file, sweepYaml('resume', join(root, 'sweeps'), 'parameters:\n  seed: [1, 2, 3]\nbudget: { maxConcurrentTrials: 1 }\nsharedPrefixes: false\n', 3)
      .replace('budget: { maxConcurrentTrials: 2 }\n', ''));
    const dir = join(root, 'sweeps', 'resume');
    const state = (): SweepState | undefined => (existsSync(dir) ? readSweepState(dir) : undefined);
    const start = (): { child: ChildProcess; exited: Promise<number | null>; stderr: () => string } => {
      const { command, args } = compiledShardwise();
      const child = spawn(command, [...args, 'sweep', '--spec', file, '--data', data, '--backend', 'wasm'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stderr!.on('data', (b: Buffer) => (text += b.toString()));
      return { child, exited: new Promise((r) => child.on('exit', (code) => r(code))), stderr: () => text };
    };
    const { child: first, exited, stderr: firstStderr } = start();
    await until('one finished trial and a second one running', () => {
      const s = state();
      return s !== undefined && s.trials[0]?.state === 'completed' && s.trials[1]?.state === 'running';
    });
    const second = await run(['sweep', '--spec', file, '--data', data]);
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, new RegExp(`lock ${join(dir, SWEEP_LOCK_FILE).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is held by process ${first.pid}`));
    first.kill('SIGINT');
    assert.equal(await exited, 130, firstStderr());
    assert.match(firstStderr(), /interrupted; finished trials are kept/);
    const paused = state()!;
    assert.equal(existsSync(join(dir, SWEEP_LOCK_FILE)), false, 'the lock is released');
    assert.deepEqual(paused.trials.map((t) => t.state), ['completed', 'pending', 'pending']);
    const finishedRuns = paused.trials[0].runDirs;

    // SIGKILL in the middle of a trial, once it has committed an epoch: nothing is cleaned up, the lock stays.
    const killed = start();
    let victim = -1;
    await until('a trial with an epoch committed and more to go', () => {
      const s = state();
      victim = s?.trials.findIndex((t) => t.state === 'running' && t.results.length >= 1 && t.results.length < t.epochs) ?? -1;
      return victim >= 0;
    });
    killed.child.kill('SIGKILL');
    await killed.exited;
    const atKill = state()!.trials[victim];
    assert.ok(existsSync(join(dir, SWEEP_LOCK_FILE)), 'a SIGKILLed sweep leaves its lock behind');

    const again = await run(['sweep', '--spec', file, '--data', data, '--backend', 'wasm']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^sweep report: .*resume[/\\]report$/m);
    const done = state()!;
    assert.deepEqual(done.trials.map((t) => t.state), ['completed', 'completed', 'completed']);
    assert.deepEqual(done.trials[0].runDirs, finishedRuns, 'the finished trial was not run again');
    assert.deepEqual(done.trials[0].results, paused.trials[0].results);
    // The killed trial went on from its last checkpoint: its committed epochs kept, the next run started after them.
    const resumed = done.trials[victim];
    assert.deepEqual(resumed.results.slice(0, atKill.results.length), atKill.results);
    assert.match(resumed.runDirs.at(-1)!, new RegExp(`from-epoch-${atKill.results.length}-\\d+$`));
    for (const f of ['results.csv', 'results.md', 'validation-curves.svg', 'params-vs-metric.svg', join('best', 'job.yaml')]) {
      assert.ok(existsSync(join(dir, 'report', f)), `report has ${f}`);
    }
  });

  it('runs a trial that asks for 2 workers as a local cluster, alone on 2 cores (coordinator + 2 workers need 3)', async () => {
    assert.deepEqual([trialCores(1, 2), trialCores(2, 2), trialCores(2, 8), trialCores(3, 16)], [1, 2, 3, 4]);
    const spec = parseSweepSpec(sweepYaml('cluster', join(root, 'sweeps'), 'parameters:\n  seed: [1, 2]\n', 2)
      .replace('  optimizer: {', '  distributed: { desiredWorkers: 2 }\n  optimizer: {'));
    let overlap = false;
    const { state } = await runSweep(spec, locally(spec, {
      onChange: (s) => { overlap ||= s.trials.filter((t) => t.state === 'running').length > 1; },
    }));
    assert.deepEqual(state.trials.map((t) => [t.workers, t.state, t.results.length]), [[2, 'completed', 2], [2, 'completed', 2]]);
    assert.ok(state.trials.every((t) => t.runDirs.length === 1 && t.runDirs[0].endsWith('cluster')));
    assert.equal(overlap, false, 'two 2-worker trials never ran at once on 2 cores');
  });

  it('marks a crashed trial failed with its error and goes on; past maxFailedTrials it stops with a clear message', async () => {
    // The MobileNet trial points at a model file that does not exist: its process fails while loading it.
    const yaml = (name: string, maxFailed: number): string => sweepYaml(name, join(root, 'sweeps'),
      `parameters:\n  model.architecture: [mobilenet_v1, small_cnn]\nbudget: { maxFailedTrials: ${maxFailed} }\n`, 2)
      .replace('budget: { maxConcurrentTrials: 2 }\n', '')
      .replace('model: { architecture: small_cnn }', `model: { architecture: small_cnn, path: ${join(root, 'missing', 'model.json')} }`);
    const tolerantSpec = parseSweepSpec(yaml('tolerant', 1));
    const tolerant = await runSweep(tolerantSpec, locally(tolerantSpec));
    assert.deepEqual(tolerant.state.trials.map((t) => t.state), ['failed', 'completed']);
    assert.match(tolerant.state.trials[0].error!, /shardwise train --local exited with code \d+ after 0 of 2 epochs: .*missing/);
    const strict = parseSweepSpec(yaml('strict', 0));
    await assert.rejects(runSweep(strict, locally(strict)),
      (err) => err instanceof FailureBudgetError && /sweep stopped: 1 trials failed, more than budget\.maxFailedTrials=0; last error: .*missing/.test(err.message));
    const stopped = readSweepState(join(root, 'sweeps', 'strict'))!;
    assert.match(stopped.stopReason!, /more than budget\.maxFailedTrials=0/);
    assert.notEqual(stopped.trials[1].state, 'completed', 'the sweep stopped before the other trial finished');
  });
});
