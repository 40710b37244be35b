/**
 * Loads ES-module-only packages (`@kubernetes/client-node`, `cockatiel`) from this CommonJS project: the
 * one loader both the Kubernetes client and the retry policy go through.
 *
 * TypeScript compiling to CommonJS rewrites `await import(x)` into `require(x)`, which fails (or, on
 * Node 20.19+, takes the experimental require(esm) path) for an ESM-only package. A function built at
 * run time keeps a real `import()` whatever the compiler emits, so the same code runs under tsx and
 * from dist/. Each package is resolved to an absolute file URL first: an `import()` inside
 * `new Function` resolves bare names from the process's working directory, not from this file.
 */
import { pathToFileURL } from 'node:url';

// Built at run time on purpose: an import() the CommonJS emit cannot rewrite.
const importModule = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

/** `import()` of an installed ES module package, from CommonJS. */
export function importEsm<T>(packageName: string): Promise<T> {
  return importModule(pathToFileURL(require.resolve(packageName)).href) as Promise<T>;
}
