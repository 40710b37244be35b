import type { TraceEvent } from '../common';

/** Mean milliseconds per step of each phase, per process, over a set of global steps. */
export interface PhaseBreakdown {
  steps: number;
  /** Process names in column order: the coordinator first. */
  processes: string[];
  /** Phase name -> process name -> ms per step. `step` is the enclosing span (the step's wall time on that process). */
  rows: Map<string, Map<string, number>>;
}

/**
 * Sums the timeline's spans of `steps` (global steps) by process and phase name and divides by the step
 * count: where an average step's time goes on each process. Phases recorded once per epoch (the
 * evaluation, the epoch-end checkpoint) are tagged with the epoch's last step and so appear amortised;
 * background spans (the coordinator's deferred replica update) get their own rows, marked `(background)`.
 */
export function phaseBreakdown(events: readonly TraceEvent[], steps: ReadonlySet<number>): PhaseBreakdown {
  const names = new Map<number, string>();
  for (const e of events) if (e.ph === 'M' && e.name === 'process_name') names.set(e.pid, String(e.args?.name));
  const rows = new Map<string, Map<string, number>>();
  for (const e of events) {
    if (e.ph !== 'X' || !steps.has(Number(e.args?.step))) continue;
    const process = names.get(e.pid) ?? `pid ${e.pid}`;
    const row = e.cat === 'step' ? 'step' : e.cat === 'background' ? `${e.name} (background)` : e.cat === 'gc' ? `${e.name} (pauses inside the phases)` : e.name;
    const cells = rows.get(row) ?? new Map<string, number>();
    cells.set(process, (cells.get(process) ?? 0) + (e.dur ?? 0) / 1000 / steps.size);
    rows.set(row, cells);
  }
  const processes = [...new Set(names.values())].sort((a, b) => (a === 'coordinator' ? -1 : b === 'coordinator' ? 1 : a < b ? -1 : 1));
  return { steps: steps.size, processes, rows };
}

/** The breakdown as a Markdown table, `step` first. */
export function breakdownTable(b: PhaseBreakdown): string[] {
  const order = [...b.rows.keys()].sort((x, y) => (x === 'step' ? -1 : y === 'step' ? 1 : 0));
  const lines = [`| phase (ms per step) | ${b.processes.join(' | ')} |`, `| --- |${b.processes.map(() => ' ---: |').join('')}`];
  for (const row of order) {
    const cells = b.processes.map((p) => {
      const ms = b.rows.get(row)?.get(p);
      return ms === undefined ? '' : ms.toFixed(1);
    });
    lines.push(`| ${row} | ${cells.join(' | ')} |`);
  }
  return lines;
}
