// Placeholder kept minimal until the compute engine lands: selects wasm, else cpu.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export interface BackendInfo { name: BackendName; fallbackReasons: string[] }

export async function initBackend(options: { prefer?: 'auto' | BackendName } = {}): Promise<BackendInfo> {
  const name = options.prefer === 'cpu' ? 'cpu' : 'wasm';
  await tf.setBackend(name);
  await tf.ready();
  return { name, fallbackReasons: [] };
}
