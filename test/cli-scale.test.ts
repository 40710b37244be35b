import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { version } from '../package.json';
import {
  FAKE_COORDINATOR_USER,
  FAKE_NAMESPACE,
  FAKE_RELEASE,
  FAKE_WORKERS,
  FakeKubeApi,
  onlyOf,
  RbacPolicy,
  renderChart,
  writeKubeconfig,
} from './support/fake-kube';

const REPO = path.resolve(__dirname, '..');
const SHARDWISE = path.join(REPO, 'bin/shardwise');

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command with `env` on top of a clean one (no kubeconfig of this machine, not "in a pod"). */
function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Outcome> {
  const base = { ...process.env, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '', SHARDWISE_DEBUG: '' };
  return new Promise((resolve) => {
    execFile(command, args, { cwd: REPO, env: { ...base, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr });
    });
  });
}

// The CLI as an operator meets it: `shardwise scale` / `make scale` against the fake API server with a
// kubeconfig, and the flags a new user tries first.
describe('shardwise CLI: scale through Kubernetes, --version, train, help', function () {
  this.timeout(120_000);
  let api: FakeKubeApi;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const replicas = (): unknown =>
    (api.store.get({ apiGroup: 'apps', resource: 'statefulsets', namespace: FAKE_NAMESPACE, name: FAKE_WORKERS }).spec as { replicas: unknown }).replicas;

  before(async () => {
    const rendered = await renderChart(FAKE_RELEASE, FAKE_NAMESPACE, ['autoscale.enabled=true']);
    api = await FakeKubeApi.start({ policy: new RbacPolicy(rendered, FAKE_NAMESPACE), tokens: { token: FAKE_COORDINATOR_USER } });
    const sts = onlyOf(rendered, 'StatefulSet');
    api.store.put({ apiGroup: 'apps', resource: 'statefulsets', namespace: FAKE_NAMESPACE }, { ...sts, metadata: { name: FAKE_WORKERS, namespace: FAKE_NAMESPACE } });
    dir = mkdtempSync(path.join(tmpdir(), 'shardwise-cli-scale-'));
    env = { KUBECONFIG: writeKubeconfig(path.join(dir, 'kubeconfig'), { server: api.url, token: 'token', namespace: FAKE_NAMESPACE }), HOME: dir };
  });

  after(async () => {
    await api?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('`shardwise scale --workers N` with a kubeconfig patches the StatefulSet; `make scale WORKERS=N` too', async () => {
    const cli = await run(SHARDWISE, ['scale', '--workers', '3', '--statefulset', FAKE_WORKERS], env);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(cli.stdout, `statefulset ${FAKE_NAMESPACE}/${FAKE_WORKERS}: replicas 2 -> 3; removed pods drain (SIGTERM) before they exit\n`);
    assert.equal(replicas(), 3);
    const make = await run('make', ['--no-print-directory', 'scale', 'WORKERS=1'], env);
    assert.equal(make.code, 0, make.stderr);
    assert.match(make.stdout, /replicas 3 -> 1/);
    assert.equal(replicas(), 1);
    assert.deepEqual(api.requestsFor('patch', 'statefulsets/scale').map((r) => r.contentType), ['application/merge-patch+json', 'application/merge-patch+json']);
  });

  it('a StatefulSet the Role does not name: exit 2 and the missing rule, no stack trace', async () => {
    const out = await run(SHARDWISE, ['scale', '--workers', '2', '--statefulset', 'someone-else'], env);
    assert.equal(out.code, 2, out.stderr);
    assert.match(out.stderr, /^shardwise: forbidden \(403\): .* may not get statefulsets\/scale "someone-else" in namespace "training"/);
    assert.doesNotMatch(out.stderr, /^\s+at /m);
  });

  it('no Kubernetes configuration and no --coordinator: says where it looked', async () => {
    const out = await run(SHARDWISE, ['scale', '--workers', '2', '--statefulset', FAKE_WORKERS], { HOME: dir, KUBECONFIG: '' });
    assert.equal(out.code, 2, out.stderr);
    assert.match(out.stderr, /no Kubernetes configuration: no --kubeconfig, \$KUBECONFIG or ~\/\.kube\/config, and not running in a pod/);
  });

  it('--version, and `scale --help` says what happens when nothing acts on the count', async () => {
    const v = await run(SHARDWISE, ['--version'], {});
    assert.equal(v.stdout.trim(), version);
    const help = await run(SHARDWISE, ['scale', '--help'], {});
    assert.match(help.stdout, /With no launcher listening .* nothing is started or stopped: the count is only recorded/s);
    assert.match(help.stdout, /patches the scale of the workers' StatefulSet/);
  });

  it('`shardwise train` needs no --local: it goes on to read the data', async () => {
    const data = path.join(dir, 'corrupt-cifar');
    mkdirSync(data);
    writeFileSync(path.join(data, 'data_batch_1.bin'), Buffer.alloc(1000));
    const job = path.join(dir, 'job.yaml');
    writeFileSync(job, `model: {architecture: small_cnn}\ntraining: {epochs: 1, batchSize: 8}\noptimizer: {learningRate: 0.01}\noutput: {runsDir: ${JSON.stringify(path.join(dir, 'runs'))}}\n`);
    const out = await run(SHARDWISE, ['train', '--job', job, '--data', data, '--backend', 'cpu'], {});
    assert.equal(out.code, 2, out.stderr);
    assert.match(out.stderr, /data_batch_1\.bin.*expected 3073-byte records/);
  });
});
