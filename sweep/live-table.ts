import type { SweepSpec } from './sweep-spec';
import { isTerminal, type SweepState } from './sweep-state';
import { formatTable, trialRows } from './results-table';

/** Where the live table is drawn. */
export interface LiveTableStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

/**
 * The table a person watches while the sweep runs. On a terminal it is redrawn in place (cursor up,
 * clear); elsewhere (a log file, CI) a line is printed only when a trial's row changes, so logs stay short.
 */
export class LiveTable {
  private drawnLines = 0;
  private readonly lastRows = new Map<string, string>();

  constructor(private readonly spec: Pick<SweepSpec, 'objective'>, private readonly stream: LiveTableStream = process.stderr) {}

  /** Draws the current state. */
  update(state: SweepState, live: ReadonlyMap<string, { epoch: number; step: number }>): void {
    const lines = formatTable(this.spec, trialRows(this.spec, state, live));
    if (this.stream.isTTY) {
      const up = this.drawnLines > 0 ? `\x1b[${this.drawnLines}F\x1b[0J` : '';
      this.stream.write(`${up}${lines.join('\n')}\n`);
      this.drawnLines = lines.length;
      return;
    }
    const [header, ...rows] = lines;
    if (this.lastRows.size === 0) this.stream.write(`${header}\n`);
    rows.forEach((row, i) => {
      const id = state.trials[i].id;
      // Only epochs done and the end count as a change: the step counter, and the pause between two
      // stretches of a trial (running, pending, running), would flood a log.
      const t = state.trials[i];
      const key = `${isTerminal(t) ? t.state : t.state === 'running' || t.results.length > 0 ? 'active' : 'new'}:${t.results.length}`;
      if (this.lastRows.get(id) !== key) {
        this.lastRows.set(id, key);
        this.stream.write(`${row}\n`);
      }
    });
  }
}
