import { InvalidArgumentError } from 'commander';

/** A commander parser for a whole-number flag of at least `min`, naming the bad value. */
export function intFlag(min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected a whole number >= ${min}, got '${value}'`);
    return n;
  };
}
