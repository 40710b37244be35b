import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { ConfigError } from '../errors';
import { BackendUnavailableError } from './errors';
import { registerWasmTrainingKernels } from './register-wasm-kernels';

/** A tfjs backend shardwise can run on. `tensorflow` is libtensorflow through tfjs-node(-gpu). */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

/** What to ask initBackend for: one backend, or the fastest one that works here. */
export type BackendPreference = 'auto' | BackendName;

/** Options of {@link initBackend}. */
export interface BackendOptions {
  /**
   * Backend to use; 'auto' tries tfjs-node-gpu, tfjs-node, wasm, then cpu and keeps the first
   * that starts. The `SHARDWISE_BACKEND` environment variable, when set, overrides this.
   * @default 'auto'
   */
  prefer?: BackendPreference;
  /**
   * Receives the one line saying which backend runs and why.
   * @default writes the line to stderr
   */
  log?: (line: string) => void;
}

/** The backend that runs, the npm package providing it, and why earlier choices were skipped. */
export interface BackendInfo {
  name: BackendName;
  package: string;
  /** One entry per candidate tried before this one: `package: reason`. */
  fallbackReasons: string[];
}

/** Name of the environment variable that overrides {@link BackendOptions.prefer}. */
export const BACKEND_ENV_VAR = 'SHARDWISE_BACKEND';

const PREFERENCES: readonly BackendPreference[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

interface Candidate {
  name: BackendName;
  package: string;
  /** Makes the backend available to tf.setBackend; throws with the reason when it cannot. */
  prepare(): void;
}

const loadModule = createRequire(__filename);

const CANDIDATES: readonly Candidate[] = [
  { name: 'tensorflow', package: '@tensorflow/tfjs-node-gpu', prepare: () => loadModule('@tensorflow/tfjs-node-gpu') },
  { name: 'tensorflow', package: '@tensorflow/tfjs-node', prepare: () => loadModule('@tensorflow/tfjs-node') },
  { name: 'wasm', package: '@tensorflow/tfjs-backend-wasm', prepare: registerWasmTrainingKernels },
  // The cpu backend is bundled in @tensorflow/tfjs and always starts.
  { name: 'cpu', package: '@tensorflow/tfjs-backend-cpu', prepare: () => undefined },
];

const resolved = new Map<BackendPreference, BackendInfo>();
let current: BackendInfo | undefined;

/** The preference in force and where it came from; rejects unknown names. Pure. */
export function resolvePreference(
  options: BackendOptions,
  env: NodeJS.ProcessEnv = process.env,
): { prefer: BackendPreference; source: string } {
  const fromEnv = env[BACKEND_ENV_VAR];
  const [prefer, field] = fromEnv !== undefined && fromEnv !== '' ? [fromEnv, BACKEND_ENV_VAR] : [options.prefer ?? 'auto', 'prefer'];
  if (!PREFERENCES.includes(prefer as BackendPreference)) {
    throw new ConfigError(field, `expected one of ${PREFERENCES.join(', ')}, got '${prefer}'`);
  }
  const source = field === BACKEND_ENV_VAR ? `${BACKEND_ENV_VAR}=${prefer}` : `prefer: '${prefer}'`;
  return { prefer: prefer as BackendPreference, source };
}

function reasonOf(err: unknown, packageName: string): string {
  const message = err instanceof Error ? err.message : String(err);
  const missing = (err as { code?: string }).code === 'MODULE_NOT_FOUND' && message.includes(`'${packageName}'`);
  return missing ? 'not installed' : message.split('\n')[0];
}

async function tryCandidate(candidate: Candidate): Promise<string | undefined> {
  try {
    candidate.prepare();
    if (!(await tf.setBackend(candidate.name))) return 'backend failed to initialise';
    await tf.ready();
    return undefined;
  } catch (err) {
    return reasonOf(err, candidate.package);
  }
}

/** What the log line adds about the running backend: SIMD decides wasm's speed (~4x). */
async function detailsOf(name: BackendName): Promise<string> {
  if (name !== 'wasm') return '';
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  return simd ? ', SIMD, 1 thread' : ', no SIMD (expect ~4x slower), 1 thread';
}

/**
 * Selects and initialises the tfjs backend for this process, registering our wasm training
 * kernels when wasm is chosen, and logs one line saying which backend runs and why. Calling it
 * again with the same preference only re-activates the backend already chosen.
 * @throws BackendUnavailableError when a specific backend was asked for and cannot start.
 */
export async function initBackend(options: BackendOptions = {}): Promise<BackendInfo> {
  const { prefer, source } = resolvePreference(options);
  const cached = resolved.get(prefer);
  if (cached) {
    if (tf.getBackend() !== cached.name) await tf.setBackend(cached.name);
    current = cached;
    return cached;
  }
  const candidates = CANDIDATES.filter((c) => prefer === 'auto' || c.name === prefer);
  const fallbackReasons: string[] = [];
  for (const candidate of candidates) {
    const failure = await tryCandidate(candidate);
    if (failure !== undefined) {
      fallbackReasons.push(`${candidate.package}: ${failure}`);
      continue;
    }
    const info: BackendInfo = { name: candidate.name, package: candidate.package, fallbackReasons };
    const skipped = fallbackReasons.length > 0 ? `; skipped ${fallbackReasons.join('; ')}` : '';
    const details = await detailsOf(info.name);
    (options.log ?? ((line: string) => process.stderr.write(`${line}\n`)))(
      `shardwise compute: backend ${info.name} (${info.package}${details}), chosen by ${source}${skipped}`,
    );
    resolved.set(prefer, info);
    current = info;
    return info;
  }
  // The last candidate is the plainest package that provides the backend (tfjs-node, not -gpu).
  throw new BackendUnavailableError(prefer, candidates[candidates.length - 1].package, fallbackReasons.join('; '));
}

/** The backend selected by the last {@link initBackend} call, or undefined before the first. */
export function currentBackend(): BackendInfo | undefined {
  return current;
}
