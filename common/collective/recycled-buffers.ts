/**
 * Float buffers handed back once nothing reads them any more, handed out again for data of the same size.
 * A worker writes a gradient-sized vector several times a step (a share's sums, the allreduce's input), the
 * coordinator one (its allreduce vector). A fresh one each time is external memory that V8 counts toward
 * the same allocation limit as its heap, which it keeps about 10 MiB above the live heap: one 8.65 MB vector
 * a step brought a full garbage collection every 1-3 steps (the timeline's GC track, the 64x64 MobileNet).
 * Whoever gives a buffer back promises that no view on it is used again.
 */
export class RecycledBuffers {
  /** Free buffers by byte length, at most `perSize` of each. */
  private readonly free = new Map<number, ArrayBuffer[]>();
  /** Every buffer this handed out: only those are taken back. */
  private readonly ours = new WeakSet<ArrayBuffer>();

  constructor(private readonly perSize = 2) {}

  /** A buffer of `floats` float32 values: a recycled one (its old values still in it) or a new one. */
  take(floats: number): Float32Array {
    const buffer = this.free.get(floats * 4)?.pop();
    if (buffer) return new Float32Array(buffer);
    const fresh = new Float32Array(floats);
    this.ours.add(fresh.buffer);
    return fresh;
  }

  /**
   * `buffer` is read no more (views on it included): it may be handed out again. One this did not hand
   * out is left alone (it may be somebody else's).
   */
  give(buffer: ArrayBufferLike): void {
    if (!(buffer instanceof ArrayBuffer) || !this.ours.has(buffer)) return;
    const list = this.free.get(buffer.byteLength) ?? [];
    if (list.includes(buffer) || list.length >= this.perSize) return;
    list.push(buffer);
    this.free.set(buffer.byteLength, list);
  }
}
