import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { ConfigError } from '../common';
import { cgroupCores, coresGiven, resolveThreads, THREADS_ENV_VAR } from '../common/compute';

describe('compute threads: how many a process uses', () => {
  it('reads a cgroup v2 CPU limit, rounding part of a core up', () => {
    assert.equal(cgroupCores('200000 100000\n'), 2);
    assert.equal(cgroupCores('150000 100000'), 2);
    assert.equal(cgroupCores('50000 100000'), 1);
    assert.equal(cgroupCores('max 100000'), undefined);
    assert.equal(cgroupCores(''), undefined);
  });

  it('gives the cores the process may use, capped by its container limit', () => {
    assert.equal(coresGiven(() => 'max 100000'), availableParallelism());
    assert.equal(coresGiven(() => '100000 100000'), 1);
    assert.equal(coresGiven(() => `${(availableParallelism() + 3) * 100000} 100000`), availableParallelism());
    assert.equal(coresGiven(() => {
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    }), availableParallelism());
  });

  it('takes the flag first, then OMP_NUM_THREADS, then the cores given', () => {
    const cores = () => 6;
    assert.deepEqual(resolveThreads(3, { [THREADS_ENV_VAR]: '2' }, cores), { threads: 3, source: '--threads' });
    assert.deepEqual(resolveThreads(undefined, { [THREADS_ENV_VAR]: '2' }, cores), { threads: 2, source: THREADS_ENV_VAR });
    assert.deepEqual(resolveThreads(undefined, { [THREADS_ENV_VAR]: '' }, cores), { threads: 6, source: 'the cores this process is given' });
    assert.deepEqual(resolveThreads(undefined, {}, cores), { threads: 6, source: 'the cores this process is given' });
  });

  it('refuses a count that is not a positive integer, naming where it came from', () => {
    assert.throws(() => resolveThreads(0, {}), (err: unknown) => err instanceof ConfigError && /--threads: expected an integer >= 1, got '0'/.test(err.message));
    assert.throws(() => resolveThreads(undefined, { [THREADS_ENV_VAR]: '2.5' }), /OMP_NUM_THREADS: expected an integer >= 1, got '2.5'/);
  });
});
