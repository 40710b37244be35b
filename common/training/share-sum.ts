import * as tf from '@tensorflow/tfjs';
import { TreeSum } from '../collective';
import type { BatchMetrics } from './classification-metrics';

/**
 * What one worker contributes to a global step for its run of micro-batches (the local trainer is one
 * worker with every micro-batch). Sums, so shares of any size add up to the whole step.
 */
export interface ShareResult extends BatchMetrics {
  /** Gradient sums over the share's samples, by variable `originalName`; frozen variables absent. */
  grads: Map<string, tf.Tensor>;
  /**
   * Sum over the share's micro-batches of the change each made to a BatchNorm moving statistic, by
   * `originalName`. The replica's statistics are restored after every micro-batch, so the change is
   * applied once per step, on every replica alike, by {@link applyMovingStatDeltas}.
   */
  movingStatDeltas: Map<string, tf.Tensor>;
  microBatches: number;
}

/** The tensors of one micro-batch result (or of a subtree's sum) by `originalName`. */
interface Sums {
  grads: Map<string, tf.Tensor>;
  movingStatDeltas: Map<string, tf.Tensor>;
}

/** left + right key by key, disposing both (the maps of two sibling nodes of the summation tree). */
function addSums(left: Sums, right: Sums): Sums {
  const add = (a: Map<string, tf.Tensor>, b: Map<string, tf.Tensor>): Map<string, tf.Tensor> => {
    const out = new Map<string, tf.Tensor>();
    for (const [key, t] of a) {
      const other = b.get(key);
      out.set(key, other === undefined ? t : tf.add(t, other));
    }
    for (const [key, t] of b) if (!a.has(key)) out.set(key, t);
    tf.dispose([...a].filter(([key]) => b.has(key)).map(([, t]) => t));
    tf.dispose([...b].filter(([key]) => a.has(key)).map(([, t]) => t));
    return out;
  };
  return { grads: add(left.grads, right.grads), movingStatDeltas: add(left.movingStatDeltas, right.movingStatDeltas) };
}

/**
 * A share's sums over its run of micro-batches, added by the fixed summation tree (`TreeSum`): a share is
 * a node of the step's tree (the coordinator hands out only nodes, and the local trainer's share is the
 * whole step), and a node's subtree has the shape of the tree over its length, so summing the run's
 * micro-batches by the tree over positions 0..n-1 gives the bytes any other split of the step adds up to.
 * Takes ownership of the tensors it is given.
 */
export class ShareSum {
  private readonly tree: TreeSum<Sums>;
  private readonly metrics = { microBatches: 0, lossSum: 0, correctTop1: 0, correctTop5: 0, count: 0 };

  /** @param microBatches micro-batches in the share */
  constructor(readonly microBatches: number) {
    this.tree = new TreeSum<Sums>(microBatches, addSums);
  }

  /** Adds the result of the share's `position`-th micro-batch (from 0). */
  add(position: number, part: ShareResult): void {
    this.tree.put({ start: position, end: position + 1 }, { grads: part.grads, movingStatDeltas: part.movingStatDeltas });
    const m = this.metrics;
    m.microBatches += part.microBatches;
    m.lossSum += part.lossSum;
    m.correctTop1 += part.correctTop1;
    m.correctTop5 += part.correctTop5;
    m.count += part.count;
  }

  /** The share's sums; the caller owns the tensors. @throws RangeError before every micro-batch is in. */
  finish(): ShareResult {
    return { ...this.tree.result(), ...this.metrics };
  }

  /** Disposes every tensor held (after a failure). */
  dispose(): void {
    for (const s of this.tree.values()) tf.dispose([...s.grads.values(), ...s.movingStatDeltas.values()]);
  }
}
