import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/PID/stat's times, read once. */
let clockTicksPerS: number | undefined;

/** CPU time (user + system, every thread) process `pid` used so far, in ms, from /proc/PID/stat (Linux). */
export function processCpuMs(pid: number): number {
  clockTicksPerS ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  // Split after the command name (it may hold spaces): index 0 is field 3 (state), so utime (14) and stime (15) are 11 and 12.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / clockTicksPerS) * 1000;
}
