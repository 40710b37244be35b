/**
 * `@kubernetes/client-node` 2.0.1 depends on undici 8, which declares Node >= 22.19 and uses three
 * built-ins Node 20 lacks. This project runs on Node 20 (package.json engines, the Node 20 image), so
 * they are filled in before the client is loaded, each only where missing. Delete this file once the
 * project requires Node 22.19.
 *
 * - `zlib.createZstdDecompress`: undici builds its table of response decoders at load time. The
 *   Kubernetes API answers gzip at most, so the zstd entry is never used; if it were, it throws.
 * - `worker_threads.markAsUncloneable`: undici marks its own classes so structuredClone refuses them;
 *   without it they are merely cloneable, which nothing here does.
 * - `Promise.withResolvers`: used by undici's fetch; the standard semantics, written out.
 */

/** Names of the built-ins this module filled in (empty on Node 22.19+). */
export const filledBuiltins: string[] = [];

/** Fills the missing built-ins once; idempotent. */
export function installNode20Compat(): void {
  // The real module objects (`import * as` would give a copy under CommonJS interop): undici `require`s them.
  const zlib = process.getBuiltinModule('node:zlib') as unknown as Record<string, unknown>;
  const workerThreads = process.getBuiltinModule('node:worker_threads') as unknown as Record<string, unknown>;
  if (typeof zlib.createZstdDecompress !== 'function') {
    zlib.createZstdDecompress = (): never => {
      throw new Error('zstd decompression needs Node 22.15+; the Kubernetes API does not send zstd');
    };
    filledBuiltins.push('zlib.createZstdDecompress');
  }
  if (typeof workerThreads.markAsUncloneable !== 'function') {
    workerThreads.markAsUncloneable = (): void => undefined;
    filledBuiltins.push('worker_threads.markAsUncloneable');
  }
  const promise = Promise as unknown as Record<string, unknown>;
  if (typeof promise.withResolvers !== 'function') {
    promise.withResolvers = <T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } => {
      let resolve!: (v: T) => void;
      let reject!: (e: unknown) => void;
      const p = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise: p, resolve, reject };
    };
    filledBuiltins.push('Promise.withResolvers');
  }
}
