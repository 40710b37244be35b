/**
 * Loads the ES-module-only packages of the Kubernetes client path (`@kubernetes/client-node`, `cockatiel`)
 * from this CommonJS project, only when a command scales through the API.
 *
 * TypeScript compiling to CommonJS rewrites `await import(x)` into `require(x)`, which fails (or, on
 * Node 20.19+, takes the experimental require(esm) path) for an ESM-only package. A function built at
 * run time keeps a real `import()` whatever the compiler emits, so the same code runs under tsx and
 * from dist/. Each package is resolved to an absolute file URL first: an `import()` inside
 * `new Function` resolves bare names from the process's working directory, not from this file.
 */
import { pathToFileURL } from 'node:url';
import { installNode20Compat } from './node20-compat';

/** The client library's module namespace (types only: nothing is loaded at compile time). */
export type KubeClientModule = typeof import('@kubernetes/client-node');
/** cockatiel's module namespace (the retry policy of a conflicting patch). */
export type RetryModule = typeof import('cockatiel');

/** The package this module loads. */
export const KUBE_CLIENT_PACKAGE = '@kubernetes/client-node';

// Built at run time on purpose: an import() the CommonJS emit cannot rewrite.
const importModule = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

/** `import()` of an installed ES module package, from CommonJS. */
export function importEsm<T>(packageName: string): Promise<T> {
  return importModule(pathToFileURL(require.resolve(packageName)).href) as Promise<T>;
}

let client: Promise<KubeClientModule> | undefined;
let retries: Promise<RetryModule> | undefined;

/** The client library, loaded once per process. */
export function loadKubeClient(): Promise<KubeClientModule> {
  installNode20Compat();
  client ??= importEsm<KubeClientModule>(KUBE_CLIENT_PACKAGE);
  return client;
}

/** cockatiel, loaded once per process. */
export function loadRetry(): Promise<RetryModule> {
  retries ??= importEsm<RetryModule>('cockatiel');
  return retries;
}
