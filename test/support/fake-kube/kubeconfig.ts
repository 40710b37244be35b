import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';

/** Writes a kubeconfig pointing at `server` with a bearer token and a default namespace (what kubectl reads). */
export function writeKubeconfig(file: string, options: { server: string; token: string; namespace: string; user?: string; caPem?: string }): string {
  const user = options.user ?? 'test-user';
  writeFileSync(file, stringify({
    apiVersion: 'v1',
    kind: 'Config',
    // With a CA the server's certificate is verified, as in a real cluster; client-node refuses plain HTTP
    // unless verification is off.
    clusters: [{
      name: 'fake',
      cluster: options.caPem
        ? { server: options.server, 'certificate-authority-data': Buffer.from(options.caPem).toString('base64') }
        : { server: options.server, 'insecure-skip-tls-verify': true },
    }],
    users: [{ name: user, user: { token: options.token } }],
    contexts: [{ name: 'fake', context: { cluster: 'fake', user, namespace: options.namespace } }],
    'current-context': 'fake',
  }));
  return file;
}
