/**
 * Loads `@kubernetes/client-node`, an ES module, from this CommonJS project.
 *
 * TypeScript compiling to CommonJS rewrites `await import(x)` into `require(x)`, which fails (or, on
 * Node 20.19+, takes a different loading path) for an ESM-only package. A function built at run time
 * keeps a real `import()` whatever the compiler emits, so the same code runs under tsx and from dist/.
 * The package is resolved to an absolute file URL first: an `import()` inside `new Function` resolves
 * bare names from the process's working directory, not from this file.
 */
import { pathToFileURL } from 'node:url';
import { installNode20Compat } from './node20-compat';

/** The client library's module namespace (types only: nothing is loaded at compile time). */
export type KubeClientModule = typeof import('@kubernetes/client-node');

/** The package this module loads. */
export const KUBE_CLIENT_PACKAGE = '@kubernetes/client-node';

// Built at run time on purpose: an import() the CommonJS emit cannot rewrite.
const importModule = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

let loaded: Promise<KubeClientModule> | undefined;

/** The client library, loaded once per process. */
export function loadKubeClient(): Promise<KubeClientModule> {
  installNode20Compat();
  loaded ??= importModule(pathToFileURL(require.resolve(KUBE_CLIENT_PACKAGE)).href) as Promise<KubeClientModule>;
  return loaded;
}
