import assert from 'node:assert/strict';
import * as path from 'node:path';
import { compileClusterOptions, MALLOC_SETTINGS, ManagedChild } from '../launcher';

// The launcher starts its coordinator and workers with glibc malloc settings that keep freed memory for
// the next step's gradient-sized buffers (launcher/malloc-env.ts): checked on the options every child is
// started with, and in the environment of a real child process started with them.

const JOB = path.resolve(__dirname, '..', 'examples', 'demo.yaml');
const quiet = { output: () => undefined, log: () => undefined };

/** What a real node child started with `env` sees of the malloc settings. */
async function childSees(env: NodeJS.ProcessEnv): Promise<Record<string, string | undefined>> {
  const names = Object.keys(MALLOC_SETTINGS);
  const child = ManagedChild.spawn({
    name: 'env-probe',
    command: process.execPath,
    args: ['-e', `console.log('env ' + JSON.stringify(Object.fromEntries(${JSON.stringify(names)}.map((k) => [k, process.env[k]]))))`],
    env,
  });
  const [, json] = await child.waitForLine(/^env (.*)$/, { timeoutMs: 20_000, what: 'the env line' });
  await child.exited;
  return JSON.parse(json) as Record<string, string | undefined>;
}

describe('launcher malloc settings', () => {
  it('starts every child with a 32 MiB mmap threshold and a 128 MiB trim threshold by default', async () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MALLOC_')));
    const options = compileClusterOptions({ job: JOB, env, ...quiet });
    assert.equal(options.env.MALLOC_MMAP_THRESHOLD_, String(32 * 1024 * 1024));
    assert.equal(options.env.MALLOC_TRIM_THRESHOLD_, String(128 * 1024 * 1024));
    assert.deepEqual(await childSees(options.env), { ...MALLOC_SETTINGS });
  });

  it('leaves a value the caller set alone, and keeps the rest of the environment', () => {
    const options = compileClusterOptions({ job: JOB, env: { MALLOC_TRIM_THRESHOLD_: '0', KEEP_ME: 'yes' }, ...quiet });
    assert.equal(options.env.MALLOC_TRIM_THRESHOLD_, '0');
    assert.equal(options.env.MALLOC_MMAP_THRESHOLD_, MALLOC_SETTINGS.MALLOC_MMAP_THRESHOLD_);
    assert.equal(options.env.KEEP_ME, 'yes');
  });
});
