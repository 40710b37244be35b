import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CURVE_NAMES, CurveThread, writeCurves, type MetricsRecord } from '../common/reporting';

/** `epochs` epochs of `stepsPerEpoch` steps with a falling loss. */
function run(epochs: number, stepsPerEpoch: number): MetricsRecord[] {
  const records: MetricsRecord[] = [];
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let step = 0; step < stepsPerEpoch; step++) {
      const globalStep = epoch * stepsPerEpoch + step;
      records.push({ type: 'step', epoch, step, globalStep, loss: 2 / (1 + globalStep / 50), lr: { backbone: 1e-4, head: 1e-3 }, samplesPerSec: 300 });
    }
    records.push({
      type: 'epoch', epoch, frozen: epoch < 1, seconds: 10, lr: { backbone: 1e-4, head: 1e-3 },
      train: { loss: 1 / (epoch + 1), top1: 0.5, top5: 0.9 }, val: { loss: 1.1 / (epoch + 1), top1: 0.45, top5: 0.88 },
    });
  }
  return records;
}

// The curves are drawn in a worker thread (RunRecorder after each epoch): on the main thread, writeCurves
// ran 0.3-0.6 s in promise callbacks only, and the coordinator's event loop served no worker meanwhile.
describe('CurveThread', function () {
  this.timeout(60_000);
  let tmp: string;
  let curves: CurveThread;

  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'curve-thread-'));
    curves = new CurveThread();
  });

  afterEach(async () => {
    await curves.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('draws what writeCurves draws, from the records sent so far (each draw sends only the new ones)', async () => {
    const records = run(2, 20);
    const first = records.length;
    await curves.draw(tmp, records);
    records.push(...run(4, 20).slice(first));
    const files = await curves.draw(tmp, records);
    const direct = path.join(tmp, 'direct');
    fs.mkdirSync(direct);
    const expected = await writeCurves(direct, records, { warn: () => undefined });
    assert.deepEqual(files.svg.map((f) => path.basename(f)), CURVE_NAMES.map((name) => `${name}.svg`));
    assert.deepEqual(files.png.map((f) => path.basename(f)), expected.png.map((f) => path.basename(f)));
    for (const [k, file] of files.svg.entries()) assert.equal(fs.readFileSync(file, 'utf8'), fs.readFileSync(expected.svg[k], 'utf8'), file);
  });

  it('leaves the calling thread\'s event loop turning while it draws', async () => {
    await curves.draw(tmp, run(1, 5)); // Starts the thread and loads the charting code there.
    let turns = 0;
    let drawing = true;
    const turn = (): void => {
      turns++;
      if (drawing) setImmediate(turn);
    };
    setImmediate(turn);
    await curves.draw(tmp, run(20, 100));
    drawing = false;
    // On this thread, writeCurves over these records lets not one setImmediate run until it is done.
    assert.ok(turns >= 10, `expected the event loop to turn while the curves were drawn, it turned ${turns} times`);
  });

  it('keeps a process whose only work left is a draw alive until the curves are written, and lets it exit after', () => {
    // The thread is unref'd while idle (a recorder never closed keeps no process alive), so it must hold
    // the process while it draws: a local run that awaits its recorder's close() would exit before its curves.
    const reporting = path.resolve(__dirname, '../common/reporting');
    const script = `const { CurveThread } = require(${JSON.stringify(reporting)});
      const records = [{ type: 'step', epoch: 0, step: 0, globalStep: 0, loss: 1, lr: { backbone: 0.1, head: 0.1 }, samplesPerSec: 1 }];
      const curves = new CurveThread();
      // The second draw is the process's only work: the thread is up and idle when it is asked.
      curves.draw(${JSON.stringify(tmp)}, records).then(() => curves.draw(${JSON.stringify(tmp)}, [...records, { ...records[0], step: 1, globalStep: 1 }]))
        .then((f) => console.log('drawn ' + f.svg.length));`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(out.trim(), `drawn ${CURVE_NAMES.length}`);
  });

  it('a draw into a folder that does not exist fails with the folder named, and the next draw works', async () => {
    const missing = path.join(tmp, 'no', 'such');
    await assert.rejects(curves.draw(missing, run(1, 5)), (err: Error) => err.name === 'CurveThreadError' && err.message.includes(missing));
    const files = await curves.draw(tmp, run(2, 5));
    assert.equal(files.svg.length, CURVE_NAMES.length);
  });
});
