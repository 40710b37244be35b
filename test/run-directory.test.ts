import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import {
  MetricsFormatError, RunDirectory, RunDirectoryError, readMetrics, recordsBefore, utcStamp,
  type EpochRecord, type MetricsRecord, type StepRecord,
} from '../common/reporting';

const START = new Date('2025-03-01T09:05:07.123Z');

function step(globalStep: number, loss: number): StepRecord {
  return { type: 'step', epoch: 0, step: globalStep, globalStep, loss, lr: { backbone: 1e-4, head: 1e-3 }, samplesPerSec: 512.5 };
}

const EPOCH: EpochRecord = {
  type: 'epoch', epoch: 0,
  train: { loss: 1.25, top1: 0.55, top5: 0.93 },
  val: { loss: 1.5, top1: 0.5, top5: 0.9, perClass: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1] },
  lr: { backbone: 0, head: 1e-3 }, frozen: true, seconds: 41.5,
};

describe('run-directory', () => {
  let tmp: string;
  beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-run-')); });
  afterEach(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

  describe('RunDirectory.create', () => {
    it('names the folder <name>-<UTC timestamp>, creating the runs folder', () => {
      assert.equal(utcStamp(START), '20250301T090507Z');
      const run = RunDirectory.create(path.join(tmp, 'nested', 'runs'), 'demo', { now: START });
      assert.equal(run.dir, path.join(tmp, 'nested', 'runs', 'demo-20250301T090507Z'));
      assert.ok(fs.statSync(run.dir).isDirectory());
    });

    it('never reuses an existing folder: a second run in the same second gets a suffix', () => {
      const first = RunDirectory.create(tmp, 'demo', { now: START });
      first.writeSummary({ run: 'first' });
      const second = RunDirectory.create(tmp, 'demo', { now: START });
      const third = RunDirectory.create(tmp, 'demo', { now: START });
      assert.equal(path.basename(second.dir), 'demo-20250301T090507Z-2');
      assert.equal(path.basename(third.dir), 'demo-20250301T090507Z-3');
      assert.deepEqual(fs.readdirSync(second.dir), []);
      assert.deepEqual(JSON.parse(fs.readFileSync(first.file('summary.json'), 'utf8')), { run: 'first' });
    });

    it('rejects names that are not one safe path segment', () => {
      for (const bad of ['', '../escape', 'a/b', '.hidden', 'sp ace']) {
        assert.throws(() => RunDirectory.create(tmp, bad), (err: unknown) =>
          err instanceof RunDirectoryError && err.message.includes(JSON.stringify(bad)), `name ${JSON.stringify(bad)}`);
      }
      assert.deepEqual(fs.readdirSync(tmp), []);
    });

    it('open() finds an existing run and refuses a missing one', () => {
      const run = RunDirectory.create(tmp, 'demo');
      assert.equal(RunDirectory.open(run.dir).dir, run.dir);
      assert.throws(() => RunDirectory.open(path.join(tmp, 'nope')), RunDirectoryError);
    });
  });

  it('writes the job spec as YAML and JSON that parse back to the spec', () => {
    const run = RunDirectory.create(tmp, 'demo');
    const spec = { name: 'demo', seed: 7, optimizer: { type: 'sgd', learningRate: 0.01 }, paramGroups: { head: { lrMultiplier: 10 } } };
    run.writeJobSpec(spec);
    assert.deepEqual(YAML.parse(fs.readFileSync(run.file('job.yaml'), 'utf8')), spec);
    assert.deepEqual(JSON.parse(fs.readFileSync(run.file('job.json'), 'utf8')), spec);
  });

  it('writes summary.json, replacing the previous one without leaving temporary files', () => {
    const run = RunDirectory.create(tmp, 'demo');
    run.writeSummary({ bestValTop1: 0.4 });
    run.writeSummary({ bestValTop1: 0.6, epochs: 3 });
    assert.deepEqual(JSON.parse(fs.readFileSync(run.file('summary.json'), 'utf8')), { bestValTop1: 0.6, epochs: 3 });
    assert.deepEqual(fs.readdirSync(run.dir), ['summary.json']);
  });

  it('checkpointDir() creates checkpoint/ and, per epoch, checkpoints/epoch-NNN/', () => {
    const run = RunDirectory.create(tmp, 'demo');
    assert.equal(run.checkpointDir(), path.join(run.dir, 'checkpoint'));
    assert.equal(run.checkpointDir(3), path.join(run.dir, 'checkpoints', 'epoch-003'));
    assert.equal(run.checkpointDir(1234), path.join(run.dir, 'checkpoints', 'epoch-1234'));
    for (const d of ['checkpoint', 'checkpoints/epoch-003']) assert.ok(fs.statSync(path.join(run.dir, d)).isDirectory());
    assert.throws(() => run.checkpointDir(-1), /expected an integer >= 0, found -1/);
  });

  describe('metrics.jsonl', () => {
    it('holds one JSON object per line and reads back equal, NaN and Infinity included', () => {
      const run = RunDirectory.create(tmp, 'demo');
      const records: MetricsRecord[] = [
        { type: 'freeze', epoch: 0 },
        step(0, 2.3), step(1, Number.NaN), step(2, Number.POSITIVE_INFINITY),
        EPOCH,
        { type: 'unfreeze', epoch: 1 },
        { type: 'lr-change', epoch: 1, step: 0, lr: { backbone: 1e-5, head: 1e-4 } },
      ];
      for (const r of records) run.appendMetrics(r);
      const text = fs.readFileSync(run.file('metrics.jsonl'), 'utf8');
      assert.ok(text.endsWith('\n'));
      const lines = text.trimEnd().split('\n');
      assert.equal(lines.length, records.length);
      assert.deepEqual(lines.map((l) => JSON.parse(l).type), records.map((r) => r.type));
      assert.equal(JSON.parse(lines[2]).loss, 'NaN');
      assert.deepEqual(readMetrics(run.dir), records);
      assert.deepEqual(run.readMetrics(), records);
    });

    it('a resume keeps only the records before its checkpoint, rewritten in one rename', () => {
      const run = RunDirectory.create(tmp, 'demo');
      const epoch1 = (r: StepRecord): StepRecord => ({ ...r, epoch: 1, step: r.globalStep - 3 });
      const written: MetricsRecord[] = [
        { type: 'freeze', epoch: 0 }, step(0, 2), step(1, 2), step(2, 2), EPOCH,
        { type: 'unfreeze', epoch: 1 }, epoch1(step(3, 1)), epoch1(step(4, 1)),
      ];
      for (const r of written) run.appendMetrics(r);
      // Mid-epoch 1 from the checkpoint after step 3: step 4 is redone, epoch 1's start is in the checkpoint.
      const mid = recordsBefore(run.readMetrics(), { epoch: 1, globalStep: 4, enteredEpoch: 1 });
      assert.deepEqual(mid, written.slice(0, 7));
      // At the epoch boundary: epoch 1 starts again, so its unfreeze is recorded again.
      const boundary = recordsBefore(run.readMetrics(), { epoch: 1, globalStep: 3, enteredEpoch: 0 });
      assert.deepEqual(boundary, written.slice(0, 5));
      run.rewriteMetrics(boundary);
      assert.deepEqual(run.readMetrics(), boundary);
      // Appends after the rewrite land in the new file, not the one the rename replaced; so after a close.
      run.appendMetrics(written[5]);
      run.close();
      run.appendMetrics(written[6]);
      assert.deepEqual(run.readMetrics(), written.slice(0, 7));
    });

    it('keeps every appended line when the writing process is killed', function () {
      this.timeout(30_000);
      const run = RunDirectory.create(tmp, 'demo');
      const script = path.join(tmp, 'writer.ts');
      const reporting = path.resolve(__dirname, '../common/reporting');
      fs.writeFileSync(script, `
        import { RunDirectory } from ${JSON.stringify(reporting)};
        const run = RunDirectory.open(${JSON.stringify(run.dir)});
        for (let i = 0; i < 50; i++) {
          run.appendMetrics({ type: 'step', epoch: 0, step: i, globalStep: i, loss: i, lr: { head: 1 }, samplesPerSec: 1 });
        }
        process.kill(process.pid, 'SIGKILL');
      `);
      const child = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: path.resolve(__dirname, '..'), encoding: 'utf8' });
      assert.equal(child.signal, 'SIGKILL', child.stderr);
      const got = readMetrics(run.dir);
      assert.equal(got.length, 50);
      assert.deepEqual(got.map((r) => (r as StepRecord).loss), Array.from({ length: 50 }, (_, i) => i));
    });

    it('names the line number of a corrupt line', () => {
      const run = RunDirectory.create(tmp, 'demo');
      run.appendMetrics(step(0, 1));
      fs.appendFileSync(run.file('metrics.jsonl'), '{"type": "step", oops\n');
      run.appendMetrics(step(1, 1));
      assert.throws(() => readMetrics(run.dir), (err: unknown) => {
        assert.ok(err instanceof MetricsFormatError);
        assert.equal(err.line, 2);
        assert.equal(err.path, run.file('metrics.jsonl'));
        assert.match(err.message, /metrics\.jsonl:2: expected a JSON object, found invalid JSON/);
        return true;
      });
    });

    it('names the field of a record with the wrong shape, and an unknown type', () => {
      const run = RunDirectory.create(tmp, 'demo');
      const bad = { ...EPOCH, train: { ...EPOCH.train, loss: 'low' } };
      fs.writeFileSync(run.file('metrics.jsonl'), `${JSON.stringify(step(0, 1))}\n\n${JSON.stringify(bad)}\n`);
      assert.throws(() => readMetrics(run.dir), /metrics\.jsonl:3: "epoch" record: train\.loss: expected a number .* found "low"/);
      fs.writeFileSync(run.file('metrics.jsonl'), `${JSON.stringify({ type: 'stepp', epoch: 0 })}\n`);
      assert.throws(() => readMetrics(run.dir), /:1: expected "type" to be one of step, epoch, freeze, unfreeze, lr-change, epoch-report, replica-hash, found "stepp"/);
      fs.writeFileSync(run.file('metrics.jsonl'), '[1, 2]\n');
      assert.throws(() => readMetrics(run.dir), /:1: expected a JSON object, found an array/);
    });

    it('reports a cut-off last line, and skips it only when asked', () => {
      const run = RunDirectory.create(tmp, 'demo');
      run.appendMetrics(step(0, 1));
      run.appendMetrics(step(1, 2));
      fs.appendFileSync(run.file('metrics.jsonl'), '{"type":"step","epo');
      assert.throws(() => readMetrics(run.dir), (err: unknown) =>
        err instanceof MetricsFormatError && err.line === 3 && /killed while writing/.test(err.message));
      assert.deepEqual(readMetrics(run.dir, { allowTruncatedTail: true }), [step(0, 1), step(1, 2)]);
      // A damaged line followed by more lines is corruption, not a cut-off write.
      fs.appendFileSync(run.file('metrics.jsonl'), `\n${JSON.stringify(step(2, 3))}\n`);
      assert.throws(() => readMetrics(run.dir, { allowTruncatedTail: true }), /metrics\.jsonl:3: /);
    });

    it('a missing metrics file is a RunDirectoryError naming it', () => {
      const run = RunDirectory.create(tmp, 'demo');
      assert.throws(() => readMetrics(run.dir), (err: unknown) =>
        err instanceof RunDirectoryError && err.path === run.file('metrics.jsonl'));
    });
  });
});
