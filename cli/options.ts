import { InvalidArgumentError, Option } from 'commander';

/** Backends a command may be asked to use (`--backend`). */
export const BACKENDS = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;

/** The `--backend` option shared by every command that computes. */
export function backendOption(): Option {
  return new Option('--backend <name>', 'compute backend').choices(BACKENDS).default('auto');
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
