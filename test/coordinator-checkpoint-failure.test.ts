import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, type JobSpec, parseJobSpec } from '../common';
import { latestCheckpoint, type RunningCoordinator, startCoordinator } from '../coordinator';
import { type StepAssignment, StepKind } from '../proto';
import { FakeWorker, writeTinyCifar } from './coordinator-fake-worker';
import { until } from './support/allreduce-members';
import { withDeadline } from './support/deadline';

/** The value of an unlabelled series in a Prometheus text exposition. */
async function scrape(metricsUrl: string, name: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `expected ${name} in ${metricsUrl}`);
  return Number(line.slice(name.length + 1));
}

/** A run whose checkpoints folder was broken after the checkpoint of global step 2 (`lastGood`). */
interface BrokenRun {
  coordinator: RunningCoordinator;
  worker: FakeWorker;
  /** Step 2's assignment, handed out before the fault. */
  step2: StepAssignment;
  lastGood: string;
  /** Where the real checkpoints folder was moved. */
  aside: string;
}

describe('coordinator: a checkpoint that cannot be written', function () {
  this.timeout(120_000);
  let dataDir: string;
  let runsDir: string;

  function jobSpec(): JobSpec {
    return parseJobSpec(`
name: checkpoint-failure
seed: 5
data: { dir: ${JSON.stringify(dataDir)}, limit: 64, valFraction: 0.15 }
model: { architecture: small_cnn, head: seed, headUnits: 8 }
training: { epochs: 1, batchSize: 16, microBatchSize: 8, evalBatchSize: 16 }
optimizer: { type: adam, learningRate: 0.002 }
output: { runsDir: ${JSON.stringify(runsDir)} }
distributed: { leaseMs: 60000, stepDeadlineMs: 60000, checkpointEverySteps: 1 }
`);
  }

  const quiet = { progressStream: fs.createWriteStream('/dev/null'), drainGraceMs: 200, stopGraceMs: 5000 };

  before(async () => {
    await initBackend({ prefer: 'wasm', log: () => undefined });
    dataDir = writeTinyCifar(64, 11);
    runsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-checkpoint-failure-'));
  });
  after(() => {
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(runsDir, { recursive: true, force: true });
  });

  /**
   * Starts a coordinator and a worker, trains two steps, hands out step 2, waits for the checkpoint of global step 2,
   * then breaks the checkpoints folder the way root can suffer it too: the folder is moved aside and a
   * file takes its place, so every later write fails to create its folder.
   */
  async function breakAfterTwoSteps(lines: string[]): Promise<BrokenRun> {
    const coordinator = await startCoordinator({ spec: jobSpec(), ...quiet, log: (line) => lines.push(line) });
    const checkpoints = path.join(coordinator.runDir, 'checkpoints');
    const lastGood = path.join(checkpoints, 'step-0000000002');
    const worker = await new FakeWorker(coordinator.grpcAddress).join('w1');
    for (let step = 0; step < 2; step++) await worker.train(await worker.pullUntil(StepKind.TRAIN));
    // The checkpoint of step 1's result (global step 2) is written in the background: step 2 goes out at once.
    const step2 = await worker.pullUntil(StepKind.TRAIN);
    assert.equal(step2.globalStep, 2);
    await until(() => lines.some((l) => l.startsWith(`checkpoint ${lastGood} `)), `the checkpoint ${lastGood} to be written`);
    assert.ok(fs.existsSync(lastGood), `expected ${lastGood} on disk once its write was logged`);
    const aside = `${checkpoints}.aside`;
    fs.renameSync(checkpoints, aside);
    fs.writeFileSync(checkpoints, 'not a folder\n');
    return { coordinator, worker, step2, lastGood, aside };
  }

  it('training goes on, each failure is counted and logged, and the outcome names the last good checkpoint', async () => {
    const lines: string[] = [];
    let broken: BrokenRun | undefined;
    let second: RunningCoordinator | undefined;
    try {
      broken = await breakAfterTwoSteps(lines);
      const { coordinator: first, worker, step2, lastGood, aside } = broken;
      const checkpoints = path.dirname(lastGood);
      await worker.train(step2);
      const done = await withDeadline(worker.runUntilStop(), 60_000, 'the job to finish');
      assert.ok(done.train >= 1 && done.eval >= 1, `the job trained on after the fault: ${JSON.stringify(done)}`);
      const outcome = await withDeadline(first.done, 10_000, 'the coordinator to finish');
      assert.equal(outcome.status, 'finished');
      assert.ok(outcome.globalStep > 3, `expected steps after the failed checkpoints, got global step ${outcome.globalStep}`);
      assert.equal(outcome.checkpoint, lastGood, 'the outcome names the last checkpoint written, not a failed one');

      const failures = lines.filter((l) => l.includes('could not be written'));
      // One per step after the fault (global steps 3..last) and one at the epoch's end.
      assert.equal(failures.length, outcome.globalStep - 2 + 1, failures.join('\n'));
      assert.equal(await scrape(first.metricsUrl, 'shardwise_checkpoint_failures_total'), failures.length);
      for (const line of failures) {
        assert.match(line, new RegExp(`checkpoint ${checkpoints}/step-\\d{10}: write failed: .*(EEXIST|ENOTDIR)`), 'the path and the cause');
        assert.ok(line.endsWith(`the resume point stays ${lastGood}`), line);
      }
      assert.ok(lines.some((l) => l.includes(`job finished after ${outcome.globalStep} steps (last checkpoint: ${lastGood})`)), lines.join('\n'));
      await first.close();
      const summary = JSON.parse(fs.readFileSync(path.join(first.runDir, 'summary.json'), 'utf8')) as { status: string; checkpoint: string };
      assert.deepEqual([summary.status, summary.checkpoint], ['finished', lastGood]);

      // The disk is back: the checkpoint the outcome named is whole, and a restart resumes from it.
      fs.rmSync(checkpoints);
      fs.renameSync(aside, checkpoints);
      const latest = await latestCheckpoint(checkpoints);
      assert.equal(latest.checkpoint?.path, lastGood);
      second = await startCoordinator({ spec: jobSpec(), runDir: first.runDir, ...quiet, log: () => undefined });
      assert.equal(second.resumedAtStep, 2);
    } finally {
      broken?.worker.close();
      await broken?.coordinator.close();
      await second?.close();
    }
  });

  it('an interrupted job whose shutdown checkpoint fails names the last good checkpoint, not the one it failed to write', async () => {
    const lines: string[] = [];
    let broken: BrokenRun | undefined;
    try {
      broken = await breakAfterTwoSteps(lines);
      const { coordinator, worker, step2, lastGood } = broken;
      await worker.train(step2);
      assert.equal((await worker.pullUntil(StepKind.TRAIN)).globalStep, 3, 'step 3 handed out after its checkpoint failed');
      coordinator.stop();
      const outcome = await withDeadline(coordinator.done, 10_000, 'the coordinator to stop');
      assert.deepEqual([outcome.status, outcome.globalStep, outcome.checkpoint], ['interrupted', 3, lastGood]);
      const failures = lines.filter((l) => l.includes('could not be written'));
      assert.deepEqual(failures.map((l) => /the (\w+) checkpoint at global step (\d+)/.exec(l)?.slice(1, 3).join('@')), ['step@3', 'shutdown@3']);
      assert.equal(await scrape(coordinator.metricsUrl, 'shardwise_checkpoint_failures_total'), 2);
      // The status page, refreshed twice a second, may report the broken folder at any moment: not the job's line.
      const jobLines = lines.filter((l) => !l.startsWith('status page: '));
      assert.equal(jobLines.at(-1), `job interrupted at global step 3; resume point: ${lastGood}`);
    } finally {
      broken?.worker.close();
      await broken?.coordinator.close();
    }
  });
});
