import * as fs from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { decodeMetricsLine, MetricsFormatError, type MetricsRecord } from '../common';

/** Bytes read per call at most, so a huge backlog is taken in slices rather than one allocation. */
const MAX_READ_BYTES = 4 * 1024 * 1024;

/**
 * Follows a run's `metrics.jsonl` as the recorder appends to it: each `read()` returns the records of the
 * complete lines written since the last one. A line still being written (no newline yet) waits for the next
 * call. It only reads: the recorder stays the file's one writer, and the status page cannot disturb it.
 */
export class MetricsTail {
  private offset = 0;
  private partial = '';
  private lineNumber = 0;
  // Keeps a UTF-8 character cut by a read boundary for the next read.
  private decoder = new StringDecoder('utf8');

  constructor(readonly file: string) {}

  /**
   * The records appended since the last call; [] while the file does not exist yet.
   * @throws MetricsFormatError on a complete line that is not a valid record (the file is damaged).
   */
  read(): MetricsRecord[] {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const records: MetricsRecord[] = [];
    try {
      const size = fs.fstatSync(fd).size;
      // A resumed run rewrites the file shorter before recording again: start over from its beginning.
      if (size < this.offset) this.reset();
      while (this.offset < size) {
        const buffer = Buffer.alloc(Math.min(MAX_READ_BYTES, size - this.offset));
        const n = fs.readSync(fd, buffer, 0, buffer.length, this.offset);
        if (n === 0) break;
        this.offset += n;
        records.push(...this.take(this.decoder.write(buffer.subarray(0, n))));
      }
    } finally {
      fs.closeSync(fd);
    }
    return records;
  }

  private take(text: string): MetricsRecord[] {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    const out: MetricsRecord[] = [];
    for (const line of lines) {
      this.lineNumber++;
      if (line.trim() === '') continue;
      try {
        out.push(decodeMetricsLine(line));
      } catch (err) {
        throw new MetricsFormatError(this.file, this.lineNumber, (err as Error).message);
      }
    }
    return out;
  }

  private reset(): void {
    this.offset = 0;
    this.partial = '';
    this.lineNumber = 0;
    this.decoder = new StringDecoder('utf8');
  }
}
