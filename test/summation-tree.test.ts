import assert from 'node:assert/strict';
import { contiguousRuns, isTreeNode, nodePrefix, parentNode, TreeSum } from '../common/collective';

/** Every node of the tree over `leaves` micro-batches, written out by the definition (left half ceil(n/2)). */
function nodesOf(start: number, end: number): string[] {
  if (end - start === 1) return [`${start}-${end}`];
  const mid = start + Math.ceil((end - start) / 2);
  return [`${start}-${end}`, ...nodesOf(start, mid), ...nodesOf(mid, end)];
}

describe('summation tree', () => {
  it('has exactly the nodes of the pairwise split, the left half the larger', () => {
    for (const leaves of [1, 2, 3, 4, 5, 6, 7, 12]) {
      const expected = new Set(nodesOf(0, leaves));
      for (let start = 0; start < leaves; start++) {
        for (let end = start + 1; end <= leaves; end++) {
          assert.equal(isTreeNode({ start, end }, leaves), expected.has(`${start}-${end}`), `[${start}, ${end}) of ${leaves}`);
        }
      }
    }
    assert.deepEqual(parentNode({ start: 2, end: 3 }, 5), { start: 0, end: 3 });
    assert.equal(parentNode({ start: 0, end: 5 }, 5), undefined);
    assert.throws(() => parentNode({ start: 1, end: 3 }, 4), /expected a node of the summation tree over 4 micro-batches, got \[1, 3\)/);
  });

  it('hands out the largest node that starts a run and fits the limit', () => {
    // 4 micro-batches: [0,4) = [0,2) + [2,4).
    assert.equal(nodePrefix(0, 4, 4), 4);
    assert.equal(nodePrefix(0, 3, 4), 2);
    assert.equal(nodePrefix(1, 4, 4), 1);
    assert.equal(nodePrefix(2, 4, 4), 2);
    assert.equal(nodePrefix(0, 4, 4, 3), 2);
    assert.equal(nodePrefix(0, 4, 4, 1), 1);
    // 3 micro-batches: [0,3) = [0,2) + [2,3).
    assert.equal(nodePrefix(1, 3, 3), 1);
    assert.deepEqual(contiguousRuns([4, 0, 1, 3]), [{ start: 0, end: 2 }, { start: 3, end: 5 }]);
  });

  it('adds nodes in any order into the same grouping, and refuses overlaps and non-nodes', () => {
    const grouping = (parts: Array<[number, number]>): string => {
      const sum = new TreeSum<string>(5, (l, r) => `(${l}+${r})`);
      for (const [start, end] of parts) sum.put({ start, end }, end - start === 1 ? `${start}` : nodesOfText(start, end));
      return sum.result();
    };
    const nodesOfText = (start: number, end: number): string => {
      if (end - start === 1) return `${start}`;
      const mid = start + Math.ceil((end - start) / 2);
      return `(${nodesOfText(start, mid)}+${nodesOfText(mid, end)})`;
    };
    const whole = '(((0+1)+2)+(3+4))';
    assert.equal(grouping([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]), whole);
    assert.equal(grouping([[4, 5], [2, 3], [0, 2], [3, 4]]), whole);
    assert.equal(grouping([[3, 5], [0, 3]]), whole);
    const sum = new TreeSum<string>(5, (l, r) => l + r);
    sum.put({ start: 0, end: 2 }, 'a');
    assert.throws(() => sum.put({ start: 1, end: 2 }, 'b'), /micro-batches \[1, 2\) overlap \[0, 2\)/);
    assert.throws(() => sum.put({ start: 2, end: 4 }, 'b'), /expected a node of the summation tree over 5 micro-batches, got \[2, 4\)/);
    assert.equal(sum.complete, false);
    assert.throws(() => sum.result(), /expected all 5 micro-batches in the sum, have \[0, 2\)/);
  });
});
