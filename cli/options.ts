import { InvalidArgumentError, Option } from 'commander';
import { parseThreads } from '../common';

/** Backends a command may be asked to use (`--backend`). */
export const BACKENDS = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;

/** The `--backend` option shared by every command that computes. */
export function backendOption(): Option {
  return new Option('--backend <name>', 'compute backend').choices(BACKENDS).default('auto');
}

/**
 * The `--threads` option of every command that trains: threads computing a step's micro-batches. Unset,
 * it is OMP_NUM_THREADS or the cores the process is given (resolveThreads); results do not depend on it.
 */
export function threadsOption(): Option {
  return new Option('--threads <n>', 'threads computing micro-batches (default: OMP_NUM_THREADS, else the cores this process is given)');
}

/** The `--threads` value as a count; a bad one is a ConfigError naming the flag (exit status 2). */
export function threadsFlag(value: string | undefined): number | undefined {
  return value === undefined ? undefined : parseThreads(value, '--threads');
}

/** Commander reducer for a repeatable `--set key.path=value`. */
export function collectOverride(value: string, previous: string[]): string[] {
  if (!value.includes('=')) throw new InvalidArgumentError(`expected key.path=value, got '${value}'`);
  return [...previous, value];
}

/** Commander reducer for a repeatable flag: every value, in order. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Parses a TCP port flag (0 = any free port). */
export function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`expected a port 0-65535, got '${value}'`);
  return port;
}

/** Parses a flag that must be an integer >= 1. */
export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected an integer >= 1, got '${value}'`);
  return n;
}

/** Progress and status lines go to stderr; stdout is kept for machine-read lines (ready lines). */
export function log(line: string): void {
  process.stderr.write(`${line}\n`);
}
