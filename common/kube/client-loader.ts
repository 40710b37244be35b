/**
 * Loads the Kubernetes client library (`@kubernetes/client-node`, ESM-only) from this CommonJS project,
 * only when a command scales through the API, through the one ES-module loader (common/esm-import.ts).
 */
import { importEsm } from '../esm-import';
import { installNode20Compat } from './node20-compat';

/** The client library's module namespace (types only: nothing is loaded at compile time). */
export type KubeClientModule = typeof import('@kubernetes/client-node');

/** The package this module loads. */
export const KUBE_CLIENT_PACKAGE = '@kubernetes/client-node';

let client: Promise<KubeClientModule> | undefined;

/** The client library, loaded once per process. */
export function loadKubeClient(): Promise<KubeClientModule> {
  installNode20Compat();
  client ??= importEsm<KubeClientModule>(KUBE_CLIENT_PACKAGE);
  return client;
}
