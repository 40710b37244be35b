import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import {
  BACKEND_ENV_VAR,
  BackendUnavailableError,
  currentBackend,
  initBackend,
  registerWasmTrainingKernels,
  resolvePreference,
  WASM_TRAINING_KERNELS,
} from '../common/compute';
import { ConfigError } from '../common/errors';

function installed(pkg: string): boolean {
  try {
    createRequire(__filename).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

const NODE_BACKENDS = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];

describe('compute: backend selection', () => {
  let savedEnv: string | undefined;

  beforeEach(() => {
    savedEnv = process.env[BACKEND_ENV_VAR];
    delete process.env[BACKEND_ENV_VAR];
  });

  afterEach(() => {
    if (savedEnv === undefined) delete process.env[BACKEND_ENV_VAR];
    else process.env[BACKEND_ENV_VAR] = savedEnv;
  });

  after(async () => {
    // Other suites in this process expect the wasm backend they ask for.
    await initBackend({ prefer: 'wasm', log: () => undefined });
  });

  it('resolves the preference: option, default, environment override', () => {
    assert.deepEqual(resolvePreference({}, {}), { prefer: 'auto', source: "prefer: 'auto'" });
    assert.equal(resolvePreference({ prefer: 'cpu' }, {}).prefer, 'cpu');
    assert.deepEqual(resolvePreference({ prefer: 'cpu' }, { [BACKEND_ENV_VAR]: 'wasm' }), {
      prefer: 'wasm',
      source: `${BACKEND_ENV_VAR}=wasm`,
    });
    assert.equal(resolvePreference({ prefer: 'cpu' }, { [BACKEND_ENV_VAR]: '' }).prefer, 'cpu');
  });

  it('rejects an unknown backend name, naming where it came from', () => {
    assert.throws(
      () => resolvePreference({}, { [BACKEND_ENV_VAR]: 'webgpu' }),
      (err: unknown) => err instanceof ConfigError && err.field === BACKEND_ENV_VAR && /got 'webgpu'/.test(err.message),
    );
    assert.throws(
      () => resolvePreference({ prefer: 'gpu' as never }, {}),
      (err: unknown) => err instanceof ConfigError && err.field === 'prefer' && /expected one of auto, tensorflow, wasm, cpu/.test(err.message),
    );
  });

  it('starts wasm with the training kernels, logs one line, and is cheap the second time', async () => {
    const lines: string[] = [];
    const log = (line: string) => lines.push(line);
    const info = await initBackend({ prefer: 'wasm', log });
    assert.equal(info.name, 'wasm');
    assert.equal(info.package, '@tensorflow/tfjs-backend-wasm');
    assert.equal(tf.getBackend(), 'wasm');
    for (const kernel of WASM_TRAINING_KERNELS) assert.ok(tf.getKernel(kernel, 'wasm'), kernel);
    await initBackend({ prefer: 'cpu', log });
    const again = await initBackend({ prefer: 'wasm', log });
    assert.equal(again, info, 'a repeated preference returns the cached result');
    assert.equal(tf.getBackend(), 'wasm', 'and re-activates its backend');
    assert.equal(currentBackend(), info);
    assert.ok(lines.filter((l) => l.includes('backend wasm')).length <= 1, lines.join('\n'));
  });

  it('registering the wasm kernels twice keeps the first registration', () => {
    const before = tf.getKernel('Conv2DBackpropFilter', 'wasm').kernelFunc;
    registerWasmTrainingKernels();
    assert.equal(tf.getKernel('Conv2DBackpropFilter', 'wasm').kernelFunc, before);
  });

  it('honours SHARDWISE_BACKEND over the option', async () => {
    process.env[BACKEND_ENV_VAR] = 'cpu';
    const info = await initBackend({ prefer: 'wasm', log: () => undefined });
    assert.equal(info.name, 'cpu');
    assert.equal(info.package, '@tensorflow/tfjs-backend-cpu');
    assert.equal(tf.getBackend(), 'cpu');
  });

  it("'auto' says why each faster backend was skipped", async function () {
    if (NODE_BACKENDS.some(installed)) this.skip();
    const lines: string[] = [];
    const info = await initBackend({ prefer: 'auto', log: (l) => lines.push(l) });
    assert.equal(info.name, 'wasm');
    assert.deepEqual(info.fallbackReasons, NODE_BACKENDS.map((p) => `${p}: not installed`));
    if (lines.length > 0) {
      assert.equal(lines.length, 1);
      assert.match(lines[0], /backend wasm \(@tensorflow\/tfjs-backend-wasm, SIMD, 1 thread\), chosen by prefer: 'auto'; skipped @tensorflow\/tfjs-node-gpu: not installed/);
    }
  });

  it("'tensorflow' when tfjs-node is absent fails with the package to install", async function () {
    if (NODE_BACKENDS.some(installed)) this.skip();
    await assert.rejects(
      initBackend({ prefer: 'tensorflow', log: () => undefined }),
      (err: unknown) =>
        err instanceof BackendUnavailableError &&
        err.backend === 'tensorflow' &&
        err.packageName === '@tensorflow/tfjs-node' &&
        /npm install @tensorflow\/tfjs-node/.test(err.message),
    );
  });
});
