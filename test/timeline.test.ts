import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import {
  closeTimeline,
  mergeTimeline,
  openTimeline,
  processTimeline,
  TimelineError,
  timelinePartsDir,
  type TraceEvent,
} from '../common';
import { exitCodeOf, ManagedChild } from '../launcher';
import { ClusterHarness, TEST_BACKEND } from './support/cluster';
import { compiledShardwise } from './support/compiled-shardwise';
import { testJobYaml } from './support/cluster-data';

/** The merged trace's events, checked to be a Chrome trace (JSON object format) of X and M events. */
function readTrace(file: string): TraceEvent[] {
  const trace = JSON.parse(readFileSync(file, 'utf8')) as { traceEvents: TraceEvent[] };
  assert.ok(Array.isArray(trace.traceEvents), 'expected a traceEvents array');
  for (const e of trace.traceEvents) {
    assert.ok(e.ph === 'X' || e.ph === 'M', `unexpected phase ${e.ph}`);
    assert.ok(Number.isInteger(e.pid) && Number.isInteger(e.tid), `pid and tid must be integers: ${JSON.stringify(e)}`);
    if (e.ph === 'X') assert.ok(e.ts > 0 && e.dur !== undefined && e.dur >= 0, `bad span ${JSON.stringify(e)}`);
  }
  return trace.traceEvents;
}

/** Process name by pid, from the `process_name` metadata. */
function processNames(events: TraceEvent[]): Map<number, string> {
  return new Map(events.filter((e) => e.ph === 'M' && e.name === 'process_name').map((e) => [e.pid, String(e.args?.name)]));
}

/**
 * Every phase on the step track lies within the `step N` span of its process and step, and the step spans
 * of one process do not overlap: the nesting Chrome and Perfetto draw. Returns the phase names by process.
 */
function assertNested(events: TraceEvent[]): Map<number, Set<string>> {
  const spans = events.filter((e) => e.ph === 'X' && e.tid === 0);
  const steps = new Map(spans.filter((e) => e.cat === 'step').map((e) => [`${e.pid}/${e.args?.step}`, e]));
  const phases = new Map<number, Set<string>>();
  for (const p of spans.filter((e) => e.cat === 'phase')) {
    const step = steps.get(`${p.pid}/${p.args?.step}`);
    assert.ok(step, `phase ${p.name} of step ${p.args?.step} (pid ${p.pid}) has no step span`);
    assert.ok(p.ts >= step.ts && p.ts + p.dur! <= step.ts + step.dur!, `phase ${p.name} sticks out of ${step.name} (pid ${p.pid})`);
    phases.set(p.pid, (phases.get(p.pid) ?? new Set()).add(p.name));
  }
  const byPid = new Map<number, TraceEvent[]>();
  for (const s of steps.values()) byPid.set(s.pid, [...(byPid.get(s.pid) ?? []), s]);
  for (const [pid, list] of byPid) {
    list.sort((a, b) => a.ts - b.ts);
    for (let i = 1; i < list.length; i++) {
      assert.ok(list[i].ts >= list[i - 1].ts + list[i - 1].dur!, `${list[i - 1].name} and ${list[i].name} overlap (pid ${pid})`);
    }
  }
  return phases;
}

describe('timeline recorder', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'shardwise-timeline-'));
  });
  afterEach(() => {
    closeTimeline();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records nothing until opened', () => {
    const timeline = processTimeline();
    assert.equal(timeline.enabled, false);
    timeline.begin('compute', 1)();
    assert.throws(() => mergeTimeline(path.join(dir, 'trace.json')), TimelineError);
  });

  it('encloses each step\'s phases in a step span; background work goes on its own track', () => {
    const file = path.join(dir, 'trace.json');
    const timeline = openTimeline({ file, processName: 'coordinator', pid: 7 });
    for (const step of [0, 1]) {
      const start = timeline.now();
      timeline.phase('plan', step, start);
      timeline.begin('wait for shares', step)();
      timeline.background('apply update (coordinator replica)', step, timeline.now());
    }
    closeTimeline();
    const events = readTrace(mergeTimeline(file).file);
    assert.equal(processNames(events).get(7), 'coordinator');
    const phases = assertNested(events);
    assert.deepEqual([...phases.get(7)!].sort(), ['plan', 'wait for shares']);
    assert.deepEqual(events.filter((e) => e.cat === 'step').map((e) => e.name), ['step 0', 'step 1']);
    assert.equal(events.filter((e) => e.cat === 'background' && e.tid === 1).length, 2);
  });

  it('puts the garbage collector\'s pauses on a track of their own, tagged with the step they fell in', async () => {
    const file = path.join(dir, 'trace.json');
    const timeline = openTimeline({ file, processName: 'worker-1', pid: 11 });
    const end = timeline.begin('compute', 5);
    const start = timeline.now();
    // Garbage until a collection has run and its entry was delivered (the observer reports on a later turn).
    let seen = 0;
    const watch = new PerformanceObserver((list) => (seen += list.getEntries().length));
    watch.observe({ entryTypes: ['gc'] });
    let keep: number[][] = [];
    for (let round = 0; seen === 0 && round < 1000; round++) {
      keep = Array.from({ length: 20_000 }, (_, i) => [i, round]);
      await new Promise((resolve) => setImmediate(resolve));
    }
    watch.disconnect();
    assert.ok(keep.length > 0 && seen > 0, 'expected a garbage collection');
    end();
    closeTimeline();
    const gcs = readTrace(mergeTimeline(file).file).filter((e) => e.cat === 'gc');
    assert.ok(gcs.length > 0, 'expected GC spans in the trace');
    for (const g of gcs) {
      assert.match(g.name, /^gc (major|minor|incremental|weakcb)$/);
      assert.equal(g.tid, 2);
      assert.equal(g.args?.step, 5);
      assert.ok(g.ts >= start - 1000, `a GC span starting ${start - g.ts} us before the phase`);
    }
  });

  it('merging skips a cut-off last line but names a malformed line elsewhere', () => {
    const file = path.join(dir, 'trace.json');
    const timeline = openTimeline({ file, processName: 'worker-1', pid: 9 });
    timeline.begin('compute', 3)();
    closeTimeline();
    const part = path.join(timelinePartsDir(file), 'worker-1-9.jsonl');
    appendFileSync(part, '{"name":"pu');
    const merged = mergeTimeline(file);
    assert.equal(merged.parts, 1);
    assert.ok(readTrace(file).some((e) => e.name === 'step 3'));
    writeFileSync(part, `not json\n${readFileSync(part, 'utf8')}`);
    assert.throws(() => mergeTimeline(file), (err: unknown) => err instanceof TimelineError && /worker-1-9\.jsonl: line 1 is not a JSON trace event/.test(err.message));
  });
});

// A real job: `shardwise cluster --timeline FILE` with a coordinator and two worker processes.
describe('shardwise cluster --timeline', function () {
  this.timeout(180_000);
  let harness: ClusterHarness;
  let child: ManagedChild | undefined;

  before(async () => {
    harness = await ClusterHarness.create();
  });
  after(async () => {
    await child?.stop({ graceMs: 5000 });
    await harness?.dispose();
  });

  it('writes a Chrome trace with the step phases of the coordinator and both workers, nested in steps', async () => {
    const job = harness.writeJob('timeline', testJobYaml('timeline', { minWorkers: 2 }, { epochs: 2 }));
    const file = path.join(harness.dir, 'trace.json');
    const { command, args } = compiledShardwise();
    child = ManagedChild.spawn({
      name: 'shardwise-cluster',
      command,
      args: [...args, 'cluster', '--job', job, '--workers', '2', '--data', harness.dataDir, '--runs-dir', harness.runsDir,
        '--backend', TEST_BACKEND, '--timeline', file],
    });
    assert.equal(exitCodeOf(await child.exited), 0, child.tail(40));
    assert.ok(child.lines().some((l) => l.includes(`[cluster] timeline ${file}`)), child.tail(20));
    const events = readTrace(file);
    const names = processNames(events);
    assert.deepEqual([...names.values()].sort(), ['coordinator', 'worker-1', 'worker-2']);
    const phases = assertNested(events);
    const phasesOf = (name: string): string[] => [...(phases.get([...names].find(([, n]) => n === name)![0]) ?? [])].sort();
    // Epoch 0 has the backbone frozen and epoch 1 trains it: every step of both is reduced among the workers.
    assert.deepEqual(phasesOf('coordinator'), ['allreduce', 'checkpoint', 'commit', 'evaluate', 'plan', 'wait for shares']);
    for (const worker of ['worker-1', 'worker-2']) {
      assert.deepEqual(phasesOf(worker), ['apply update', 'compute', 'evaluate', 'pull', 'push', 'reduce']);
    }
    const coordinatorPid = [...names].find(([, n]) => n === 'coordinator')![0];
    const steps = events.filter((e) => e.cat === 'step' && e.pid === coordinatorPid).length;
    assert.equal(steps, 2 * harness.stepsPerEpoch, 'one step span per global step on the coordinator');
    assert.ok(events.some((e) => e.cat === 'background' && e.pid === coordinatorPid), 'the deferred replica update is on the trace');
  });
});
