import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import {
  ChildExitedError,
  ChildStartError,
  ChildTimeoutError,
  exitCodeOf,
  ManagedChild,
  type OutputStream,
} from '../launcher';
import { pollUntil } from './support/deadline';
import { alive } from './support/process-alive';

/** A node child running `script`: the tiny processes these tests drive. */
function nodeChild(name: string, script: string, onLine?: (line: string, stream: OutputStream) => void): ManagedChild {
  return ManagedChild.spawn({ name, command: process.execPath, args: ['-e', script], onLine });
}

// Prints a ready line, then exits 0 on SIGTERM after saying so (what a well-behaved server does). Handlers
// go in before the ready line: a parent may signal as soon as it has read it.
const SERVER = `
process.on('SIGTERM', () => { process.stdout.write('draining\\n'); process.exit(0); });
process.stderr.write('loading\\n');
process.stdout.write('server ready port=4242\\n');
setInterval(() => {}, 1000);`;

// A launcher with 12 children (more than Node's default of 10 listeners per event) that exits without
// stopping them: it prints their pids once every one is up.
const ABANDONING_LAUNCHER = `
const { ManagedChild } = require(${JSON.stringify(resolve(__dirname, '../launcher'))});
const children = Array.from({ length: 12 }, (_, i) => ManagedChild.spawn({
  name: 'c' + i, command: process.execPath, args: ['-e', "console.log('up'); setInterval(() => {}, 1000)"],
}));
Promise.all(children.map((c) => c.waitForLine(/^up$/))).then(() => {
  console.log(children.map((c) => c.pid).join(' '));
  process.exit(0);
});`;

describe('launcher: child processes', () => {
  it('a launcher that exits without stopping its children takes them with it, with one exit listener for all', async () => {
    const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((done, fail) => {
      execFile(process.execPath, ['--import', 'tsx', '-e', ABANDONING_LAUNCHER], (err, out, errOut) => {
        if (err) fail(new Error(`launcher failed: ${err.message}\n${errOut}`));
        else done({ stdout: out, stderr: errOut });
      });
    });
    const pids = stdout.trim().split(' ').map(Number);
    assert.equal(pids.length, 12, `expected 12 pids, got: ${stdout}`);
    await pollUntil(() => (pids.every((pid) => !alive(pid)) ? true : undefined), {
      timeoutMs: 10_000, intervalMs: 20, what: 'every abandoned child to be killed',
    });
    assert.doesNotMatch(stderr, /MaxListenersExceededWarning/);
  });

  it('resolves at the ready line with its match, and passes every line on with its stream', async () => {
    const seen: string[] = [];
    const child = nodeChild('server', SERVER, (line, stream) => seen.push(`${stream}: ${line}`));
    try {
      const match = await child.waitForLine(/^server ready port=(\d+)$/, { timeoutMs: 10_000 });
      assert.equal(match[1], '4242');
      assert.ok(child.running);
      // A wait issued after the line was printed still finds it in the history.
      assert.equal((await child.waitForLine(/^loading$/))[0], 'loading');
      assert.deepEqual(seen.sort(), ['stderr: loading', 'stdout: server ready port=4242']);
    } finally {
      await child.stop();
    }
  });

  it('stop sends SIGTERM and resolves with the exit status after the child has exited', async () => {
    const child = nodeChild('server', SERVER);
    await child.waitForLine(/server ready/);
    const status = await child.stop();
    assert.deepEqual({ code: status.code, signal: status.signal }, { code: 0, signal: null });
    assert.equal(child.running, false);
    assert.ok(child.lines().includes('draining'), `expected the child's SIGTERM handler to run; output: ${child.tail()}`);
    // Stopping again is harmless and reports the same status.
    assert.equal((await child.stop()).code, 0);
  });

  it('escalates to SIGKILL when the child ignores SIGTERM past the grace period', async () => {
    const child = nodeChild('stubborn', "process.on('SIGTERM', () => {}); console.log('up'); setInterval(() => {}, 1000);");
    await child.waitForLine(/^up$/);
    const status = await child.stop({ graceMs: 200 });
    assert.equal(status.signal, 'SIGKILL');
    assert.equal(exitCodeOf(status), 137);
  });

  it('a child that crashes before its ready line fails the wait with its exit code and last output', async () => {
    const child = nodeChild('crasher', "console.error('cannot open model.json'); process.exit(3);");
    const err = await child.waitForLine(/ready/, { what: 'the ready line' }).catch((e: unknown) => e);
    assert.ok(err instanceof ChildExitedError, `expected ChildExitedError, got ${String(err)}`);
    assert.equal(err.code, 3);
    assert.match(err.message, /crasher ended \(exit code 3\) while waiting for the ready line/);
    assert.match(err.message, /cannot open model\.json/);
    assert.equal(exitCodeOf((await child.exited)), 3);
  });

  it('a wait on a child killed by a signal names the signal', async () => {
    const child = nodeChild('victim', "console.log('up'); setInterval(() => {}, 1000);");
    await child.waitForLine(/^up$/);
    const pending = child.waitForLine(/never/);
    child.signal('SIGKILL');
    const err = await pending.catch((e: unknown) => e);
    assert.ok(err instanceof ChildExitedError);
    assert.equal(err.signal, 'SIGKILL');
    assert.match(err.message, /signal SIGKILL/);
  });

  it('a missing executable is a ChildStartError naming it, not a hang', async () => {
    const child = ManagedChild.spawn({ name: 'ghost', command: 'shardwise-no-such-binary', args: [] });
    const err = await child.waitForLine(/ready/).catch((e: unknown) => e);
    assert.ok(err instanceof ChildStartError, `expected ChildStartError, got ${String(err)}`);
    assert.match(err.message, /'shardwise-no-such-binary' was not found/);
    assert.equal(exitCodeOf(await child.exited), 1);
  });

  it('a wait that times out rejects but leaves the child running', async () => {
    const child = nodeChild('silent', "console.log('up'); setInterval(() => {}, 1000);");
    try {
      await child.waitForLine(/^up$/);
      const err = await child.waitForLine(/ready/, { timeoutMs: 100, what: 'the ready line' }).catch((e: unknown) => e);
      assert.ok(err instanceof ChildTimeoutError);
      assert.match(err.message, /expected the ready line within 100 ms/);
      assert.ok(child.running);
    } finally {
      await child.stop();
    }
  });

  it('joins a line written in pieces and ignores history when asked for new lines only', async () => {
    const child = nodeChild(
      'pieces',
      "process.stdout.write('sha'); setTimeout(() => process.stdout.write('rdwise ready\\n'), 50);" +
        "process.on('SIGUSR2', () => console.log('shardwise ready'));" +
        'setInterval(() => {}, 1000);',
    );
    try {
      assert.equal((await child.waitForLine(/^shardwise ready$/))[0], 'shardwise ready');
      const again = child.waitForLine(/^shardwise ready$/, { onlyNew: true });
      child.signal('SIGUSR2');
      await again;
      assert.deepEqual(child.lines(), ['shardwise ready', 'shardwise ready']);
    } finally {
      await child.stop();
    }
  });
});
