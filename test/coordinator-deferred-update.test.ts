import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { DeferredUpdate } from '../coordinator/step/deferred-update';

describe('coordinator: the deferred replica update', () => {
  it('runs a turn after its release, or at once on settle, exactly once', async () => {
    const applied: string[] = [];
    const update = new DeferredUpdate();
    update.defer(() => applied.push('step 1'));
    await nextTurn();
    assert.deepEqual(applied.slice(), [], 'not before the next step\'s shares went out (release)');
    update.release();
    assert.deepEqual(applied.slice(), [], 'not during the hand-out');
    await nextTurn();
    assert.deepEqual(applied.slice(), ['step 1'], 'once the turn is over');
    update.defer(() => applied.push('step 2'));
    update.settle();
    assert.deepEqual(applied.slice(), ['step 1', 'step 2'], 'at once when something reads the weights');
    await nextTurn();
    update.settle();
    assert.deepEqual(applied.slice(), ['step 1', 'step 2'], 'never twice');
  });

  it('a release does not run an update deferred after it', async () => {
    const applied: number[] = [];
    const update = new DeferredUpdate();
    update.defer(() => applied.push(1));
    update.release();
    update.defer(() => applied.push(2));
    await nextTurn();
    assert.deepEqual(applied.slice(), [1], 'step 2 waits for its own release');
    update.release();
    await nextTurn();
    assert.deepEqual(applied.slice(), [1, 2]);
  });

  it('applies updates in commit order: deferring one settles the one before', () => {
    const applied: number[] = [];
    const update = new DeferredUpdate();
    for (let step = 1; step <= 3; step++) update.defer(() => applied.push(step));
    assert.deepEqual(applied.slice(), [1, 2]);
    update.settle();
    assert.deepEqual(applied.slice(), [1, 2, 3]);
  });

  it('keeps the failure of an update run after the turn and rethrows it on every settle', async () => {
    const update = new DeferredUpdate();
    update.defer(() => {
      throw new Error('optimizer: shape mismatch');
    });
    update.release();
    await nextTurn();
    assert.throws(() => update.settle(), /optimizer: shape mismatch/);
    assert.throws(() => update.defer(() => undefined), /optimizer: shape mismatch/, 'no later update runs on a broken replica');
  });
});
