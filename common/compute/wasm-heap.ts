import * as tf from '@tensorflow/tfjs';
import { ComputeError } from './errors';
import { instantiate, type WasmMemory } from './wasm-assembler';

/**
 * Our own WebAssembly modules, run on the tensors in the wasm backend's memory: instantiated with that
 * memory as their import, they read the inputs and write outputs the backend allocated, in place, with
 * no copy in or out. This relies on tfjs-backend-wasm 4.22 internals (named here, and nowhere else).
 */

/** What the wasm backend object exposes that our kernels need. */
interface WasmBackendInternals {
  wasm?: { asm?: { memory?: WasmMemory } };
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  disposeData(dataId: tf.DataId): boolean;
}

/** Exported functions of a module; every argument is an i32 byte offset, a count or an f32 scalar. */
export type WasmExports = Record<string, (...args: number[]) => void>;

const instances = new WeakMap<WasmMemory, Map<string, WasmExports>>();

/** The wasm backend's heap as our kernels use it: module instances, allocation and offsets. */
export class WasmHeap {
  private readonly backend: WasmBackendInternals;
  private readonly memory: WasmMemory;

  constructor(backend: unknown) {
    this.backend = backend as WasmBackendInternals;
    const memory = this.backend.wasm?.asm?.memory;
    if (!memory) throw new ComputeError('expected the wasm backend to expose its memory as wasm.asm.memory (tfjs-backend-wasm 4.22), found none');
    this.memory = memory;
  }

  /** The module `key` built by `build`, instantiated once on this memory (it stays valid as memory grows). */
  module(key: string, build: () => Uint8Array): WasmExports {
    let modules = instances.get(this.memory);
    if (!modules) instances.set(this.memory, (modules = new Map()));
    let exports = modules.get(key);
    if (!exports) modules.set(key, (exports = instantiate(build(), this.memory) as WasmExports));
    return exports;
  }

  /** A new float32 tensor of `shape` in the backend's memory, contents undefined until a kernel writes them. */
  allocate(shape: number[]): tf.TensorInfo {
    return this.backend.makeOutput(shape, 'float32');
  }

  /** Frees a tensor this kernel allocated for scratch and does not return. */
  release(info: tf.TensorInfo): void {
    this.backend.disposeData(info.dataId);
  }

  /**
   * The float32 values of a tensor as a view on the memory, for the few per-channel values a kernel
   * computes in JavaScript. Take it after the kernel's last allocation: growing the memory detaches it.
   */
  floats(info: tf.TensorInfo): Float32Array {
    return new Float32Array(this.memory.buffer, this.offset(info), tf.util.sizeFromShape(info.shape));
  }

  /** Byte offset of a tensor's data in the memory. */
  offset(info: tf.TensorInfo): number {
    const entry = this.backend.dataIdMap.get(info.dataId);
    if (!entry) throw new ComputeError(`tensor of shape [${info.shape}] has no data in the wasm backend`);
    return entry.memoryOffset;
  }
}
