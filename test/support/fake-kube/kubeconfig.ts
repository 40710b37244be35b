import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';

/** Writes a kubeconfig pointing at `server` with a bearer token and a default namespace (what kubectl reads). */
export function writeKubeconfig(file: string, options: { server: string; token: string; namespace: string; user?: string }): string {
  const user = options.user ?? 'test-user';
  writeFileSync(file, stringify({
    apiVersion: 'v1',
    kind: 'Config',
    // client-node refuses plain HTTP unless TLS verification is off; the fake serves HTTP on loopback.
    clusters: [{ name: 'fake', cluster: { server: options.server, 'insecure-skip-tls-verify': true } }],
    users: [{ name: user, user: { token: options.token } }],
    contexts: [{ name: 'fake', context: { cluster: 'fake', user, namespace: options.namespace } }],
    'current-context': 'fake',
  }));
  return file;
}
