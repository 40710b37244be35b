/**
 * The sweep's Kubernetes executor against the fake API server: trials are batch/v1 Jobs created through
 * the real client library as the chart's sweep ServiceAccount (its Role enforced), each Job's pod a real
 * `shardwise train --local` process whose run folder lands on the shared ReadWriteMany volume (a local
 * folder here), where forks find their donor's checkpoint. Covers early stopping and a fork end to end,
 * a crashed pod, the failure budget, a Role missing a verb, cleanup of a killed sweep's Jobs, a multi-worker
 * trial as the chart's objects whose pods the fake kubelet runs as real coordinator, worker and NATS
 * processes (trained to the end and scored as the same trial on one worker; a coordinator killed fails it),
 * and that the Role holds exactly the verbs the executor uses.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeApiError } from '../common';
import { bestTrial, FailureBudgetError, KubernetesExecutor, parseSweepSpec, runSweep, SweepSpecError, sweepSavings, type SweepSpec } from '../sweep';
import { writeSignalCifar } from './support/cluster-data';
import { FAKE_NAMESPACE, FAKE_SWEEP_NAME, FAKE_SWEEP_USER, type FakeSweepCluster, RbacPolicy, startFakeSweepCluster } from './support/fake-kube';
import { sweepYaml } from './support/sweep-yaml';

describe('sweep on Kubernetes (fake API server, real trial processes)', function () {
  this.timeout(180_000);
  const root = mkdtempSync(join(tmpdir(), 'sweep-kube-'));
  // The shared volume: the sweep folders and the dataset live on it, at the same path in pods and here.
  const shared = join(root, 'shared');
  const data = join(shared, 'data');
  let fake: FakeSweepCluster;

  const spec = (name: string, extra: string, epochs = 2, edit = (yaml: string): string => yaml): SweepSpec => parseSweepSpec(edit(sweepYaml(name, join(shared, 'sweeps'), extra, epochs))
    .replace('executor: { cores: 2 }', `executor:
  type: kubernetes
  kubernetes:
    image: shardwise:test
    sharedVolume: { claimName: ${FAKE_SWEEP_NAME}, mountPath: ${shared} }
    parallelism: 2`));
  const run = (s: SweepSpec) => runSweep(s, {
    dataDir: data, backend: 'wasm', pollMs: 200,
    executor: () => KubernetesExecutor.connect(s, { kubeconfig: fake.kubeconfig, pollMs: 200, dataDir: data }),
  });
  const releaseLeftovers = (): string[] => [['', 'serviceaccounts'], ['', 'configmaps'], ['', 'services'], ['apps', 'statefulsets'], ['apps', 'deployments'], ['', 'pods']]
    .flatMap(([apiGroup, resource]) => fake.api.store.list({ apiGroup, resource, namespace: FAKE_NAMESPACE }).map((o) => `${resource}/${o.metadata.name}`))
    .concat(fake.kubelet.podNames());
  const leftovers = (): string[] => ['jobs', 'pods'].flatMap((resource) =>
    fake.api.store.list({ apiGroup: resource === 'jobs' ? 'batch' : '', resource, namespace: FAKE_NAMESPACE }).map((o) => `${resource}/${o.metadata.name}`));

  before(async () => {
    mkdirSync(data, { recursive: true });
    writeSignalCifar(data, 160, 1);
    fake = await startFakeSweepCluster({ dir: root, sharedDir: shared });
  });

  after(async () => {
    await fake?.close();
  });

  afterEach(() => {
    assert.deepEqual([...fake.controller.problems, ...fake.kubelet.problems], [], 'the fake kubelets found nothing a real cluster would refuse');
  });

  it('runs each trial stretch as a Job: early stopping, a fork from its donor\'s checkpoint on the shared volume, every Job deleted', async () => {
    // t000 (lr 3e-3, unfrozen at 1e-3) t001 (3e-3, unfrozen at 1e-4: shares the frozen epoch 1 with t000) t002 (1e-6, 1e-3)
    // t003 (1e-6, 1e-4: shares epoch 1 with t002).
    const s = spec('kes', `parameters:
  optimizer.learningRate: [0.003, 0.000001]
  freeze.unfreezeLearningRate: [0.001, 0.0001]
earlyStopping: { type: asha, gracePeriod: 1, reductionFactor: 3 }
`);
    const { state, interrupted } = await run(s);
    assert.equal(interrupted, false);
    const [t0, t1, t2, t3] = state.trials;
    assert.deepEqual(state.trials.map((t) => t.state), ['completed', 'completed', 'stopped', 'stopped'], JSON.stringify(state.trials.map((t) => t.error)));
    assert.match(t2.decisions[0].reason, /val\.loss .* outside the top 1\/3/);
    assert.deepEqual(t1.fork, { from: 't000', epochs: 1 });
    assert.deepEqual(t1.results.map((r) => r.ranBy), ['t000', 't001']);
    assert.deepEqual(sweepSavings(state), { trials: 4, naiveTrialEpochs: 8, runTrialEpochs: 4, sharedTrialEpochs: 2, stoppedTrialEpochs: 2, savedFraction: 0.5 });
    // One Job per stretch, named after the sweep, the trial, the epoch it starts from and the attempt.
    const created = fake.api.requestsFor('create', 'jobs');
    assert.ok(created.every((r) => r.status === 200), `the API server accepted every Job (kubernetes-models schema): ${created.map((r) => r.status)}`);
    const names = created.map((r) => (r.body as { metadata: { name: string } }).metadata.name);
    assert.deepEqual(names.sort(), ['kes-t000-e0-0', 'kes-t000-e1-1', 'kes-t001-e1-0', 'kes-t002-e0-0']);
    // The fork's Job resumes from the checkpoint t000's pod wrote on the shared volume.
    const forkJob = created.find((r) => (r.body as { metadata: { name: string } }).metadata.name === 'kes-t001-e1-0')!.body as {
      metadata: { labels: Record<string, string> }; spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
    const args = forkJob.spec.template.spec.containers[0].args;
    assert.equal(args[args.indexOf('--resume-from') + 1], t0.checkpoints[1]);
    assert.ok(t0.checkpoints[1].startsWith(join(shared, 'sweeps', 'kes', 'trials', 't000')), t0.checkpoints[1]);
    assert.equal(forkJob.metadata.labels['shardwise.io/sweep'], 'kes');
    assert.equal(forkJob.metadata.labels['shardwise.io/trial'], 't001');
    assert.deepEqual(t3.results.filter((r) => r.ranBy === 't003'), [], 't003 was stopped on the epoch it shared: no Job');
    // Cleaned up: every Job the sweep created was deleted with its pod.
    assert.deepEqual(leftovers(), []);
    assert.equal(fake.api.requests.filter((r) => r.status === 403).length, 0);
  });

  it('marks a trial whose pod fails as failed with its termination message and goes on; past maxFailedTrials it stops', async () => {
    // The MobileNet trial points at a model file that does not exist: its pod fails while loading it.
    const yaml = (name: string, maxFailed: number): SweepSpec => spec(name,
      `parameters:\n  model.architecture: [mobilenet_v1, small_cnn]\nbudget: { maxFailedTrials: ${maxFailed} }\n`, 2,
      (y) => y.replace('budget: { maxConcurrentTrials: 2 }\n', '').replace('model: { architecture: small_cnn }', `model: { architecture: small_cnn, path: ${join(root, 'missing', 'model.json')} }`));
    const tolerant = await run(yaml('kfail', 1));
    assert.deepEqual(tolerant.state.trials.map((t) => t.state), ['failed', 'completed']);
    assert.match(tolerant.state.trials[0].error!, /^Job kfail-t000-e0-0 failed \(BackoffLimitExceeded\) after 0 of 2 epochs: exit code \d+ \(Error\): .*model\.json does not exist/);
    await assert.rejects(run(yaml('kstrict', 0)),
      (err) => err instanceof FailureBudgetError && /more than budget\.maxFailedTrials=0; last error: Job kstrict-t000-e0-0 failed .*missing/.test(err.message));
    assert.deepEqual(leftovers(), [], 'the stopped sweep deleted the Job still running');
  });

  it('a Role without a verb the executor uses fails naming it; the next run deletes the Job the failed one left', async () => {
    const withoutDelete = fake.rendered.map((o) => o.kind === 'Role' && o.metadata.name === FAKE_SWEEP_NAME
      ? { ...o, rules: (o.rules as Array<{ resources: string[]; verbs: string[] }>).map((r) => r.resources.includes('jobs') ? { ...r, verbs: r.verbs.filter((v) => v !== 'delete') } : r) }
      : o);
    fake.api.setPolicy(new RbacPolicy(withoutDelete, FAKE_NAMESPACE));
    const s = spec('krbac', 'parameters:\n  seed: [1]\n');
    try {
      await assert.rejects(run(s), (err) => err instanceof KubeApiError &&
        err.message.includes(`forbidden (403): user 'test-user' of ${fake.kubeconfig} may not delete jobs.batch "krbac-t000-e0-0" in namespace "${FAKE_NAMESPACE}"`) &&
        err.message.includes('its Role lacks the verb "delete" on jobs. Add the rule {apiGroups: ["batch"], resources: ["jobs"], verbs: ["delete"]}') &&
        err.message.includes(`User "${FAKE_SWEEP_USER}" cannot delete resource "jobs"`));
    } finally {
      fake.api.setPolicy(new RbacPolicy(fake.rendered, FAKE_NAMESPACE));
    }
    assert.deepEqual(leftovers().filter((o) => o.startsWith('jobs/')), ['jobs/krbac-t000-e0-0']);
    const again = await run(s);
    assert.deepEqual(again.state.trials.map((t) => t.state), ['completed']);
    assert.deepEqual(leftovers(), []);
  });

  it('runs a multi-worker trial as the chart\'s coordinator, workers and NATS, real processes under its own release: scored as the same trial on one worker', async () => {
    // t000 is one process (a Job), t001 the same job on 2 workers: the chart's objects, their pods run by the fake kubelet.
    const s = spec('kmw', 'parameters:\n  distributed.desiredWorkers: [1, 2]\n');
    const { state, interrupted } = await run(s);
    assert.equal(interrupted, false);
    const [t0, t1] = state.trials;
    assert.deepEqual(state.trials.map((t) => [t.workers, t.state]), [[1, 'completed'], [2, 'completed']], JSON.stringify(state.trials.map((t) => t.error)));
    // Training is deterministic to the bit whatever the worker count: the release's metrics are the Job's, epoch by epoch.
    assert.deepEqual(t1.results.map((r) => [r.epoch, r.val, r.ranBy]), t0.results.map((r) => [r.epoch, r.val, 't001']));
    assert.deepEqual(sweepSavings(state), { trials: 2, naiveTrialEpochs: 4, runTrialEpochs: 4, sharedTrialEpochs: 0, stoppedTrialEpochs: 0, savedFraction: 0 });
    assert.ok(['t000', 't001'].includes(bestTrial(s, state)!.id));
    await fake.kubelet.idle();
    // Its pods ran as processes: NATS, the coordinator and both workers (the worker id is the pod name), each exited once.
    const pods = fake.kubelet.events.filter((e) => e.event === 'started' && e.pod.startsWith('kmw-t001-')).map((e) => e.pod.replace(/-[0-9a-f]{5}$/, ''));
    assert.deepEqual(pods.sort(), ['kmw-t001-shardwise-coordinator', 'kmw-t001-shardwise-nats', 'kmw-t001-shardwise-worker-0', 'kmw-t001-shardwise-worker-1']);
    const workerLog = fake.kubelet.events.find((e) => e.event === 'exited' && e.pod === 'kmw-t001-shardwise-worker-1')?.output ?? '';
    assert.match(workerLog, /kmw-t001-shardwise-worker-1/, 'the worker registered under its pod name');
    // The chart's objects, named by the trial's release, labelled with the sweep and the trial, each accepted by its schema.
    const created = fake.api.requests.filter((r) => r.verb === 'create' && r.user === FAKE_SWEEP_USER && r.resource !== 'jobs' &&
      (r.body as { metadata: { name: string } }).metadata.name.startsWith('kmw-'));
    assert.ok(created.every((r) => r.status === 200), created.map((r) => `${r.resource} ${r.status}`).join(', '));
    const objects = created.map((r) => r.body as { kind: string; metadata: { name: string; labels: Record<string, string> }; spec?: Record<string, unknown> });
    assert.deepEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`), [
      'ServiceAccount/kmw-t001-shardwise-coordinator', 'ConfigMap/kmw-t001-shardwise-job', 'Service/kmw-t001-shardwise-coordinator',
      'Service/kmw-t001-shardwise-nats', 'Service/kmw-t001-shardwise-worker-headless', 'Deployment/kmw-t001-shardwise-nats',
      // Created once the NATS pod is Ready: the coordinator's first connect to the bus does not wait.
      'StatefulSet/kmw-t001-shardwise-worker', 'Deployment/kmw-t001-shardwise-coordinator',
    ]);
    assert.ok(objects.every((o) => o.metadata.labels['shardwise.io/sweep'] === 'kmw' && o.metadata.labels['shardwise.io/trial'] === 't001'));
    assert.equal((objects.find((o) => o.kind === 'StatefulSet')!.spec as { replicas: number }).replicas, 2);
    // The coordinator's run directory is the trial's folder on the shared volume, which its pod mounts at the same path.
    const pod = (objects.find((o) => o.metadata.name === 'kmw-t001-shardwise-coordinator' && o.kind === 'Deployment')!.spec as {
      template: { spec: { containers: Array<{ args: string[]; volumeMounts: Array<{ name: string; mountPath: string }> }>; volumes: Array<{ name: string; persistentVolumeClaim?: { claimName: string } }> } } }).template.spec;
    assert.ok(pod.containers[0].args.includes(`--run-dir=${t1.runDirs[0]}`) && t1.runDirs[0].startsWith(shared), pod.containers[0].args.join(' '));
    assert.ok(pod.containers[0].args.includes(`--data=${data}`));
    assert.deepEqual(pod.containers[0].volumeMounts.find((m) => m.mountPath === shared)?.name, 'sweep');
    assert.equal(pod.volumes.find((v) => v.name === 'sweep')?.persistentVolumeClaim?.claimName, FAKE_SWEEP_NAME);
    assert.deepEqual(releaseLeftovers(), []);
  });

  it('fails a multi-worker trial whose coordinator process dies, with its exit code, and deletes its release', async () => {
    const s = spec('kcrash', 'parameters:\n  seed: [1]\nbudget: { maxFailedTrials: 1 }\n', 2,
      (y) => y.replace('budget: { maxConcurrentTrials: 2 }\n', '').replace('  optimizer: {', '  distributed: { desiredWorkers: 2 }\n  optimizer: {'));
    // SIGKILL the coordinator as its pod starts.
    fake.api.store.onChange((key, obj, previous) => {
      if (key.resource === 'pods' && !previous && obj.metadata.name.startsWith('kcrash-t000-shardwise-coordinator-')) process.kill(fake.kubelet.pidOf(obj.metadata.name), 'SIGKILL');
    });
    const { state } = await run(s);
    await fake.kubelet.idle();
    const [t0] = state.trials;
    assert.deepEqual([t0.workers, t0.state], [2, 'failed']);
    assert.match(t0.error!, /^release kcrash-t000 \(2 workers\) failed after 0 of 2 epochs: container coordinator: exit code 137 \(Error\)/);
    assert.deepEqual(releaseLeftovers(), []);
  });

  it('the sweep Role grants exactly the verbs the executor used; the sweep folder must lie on the shared volume', async () => {
    const used = new Set(fake.api.requests.filter((r) => r.user === FAKE_SWEEP_USER && r.status !== 403)
      .map((r) => `${r.apiGroup}/${r.resource}:${r.verb}`));
    const role = fake.rendered.find((o) => o.kind === 'Role' && o.metadata.name === FAKE_SWEEP_NAME)!;
    const granted = new Set((role.rules as Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>)
      .flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`)))));
    assert.deepEqual([...used].sort(), [...granted].sort());
    const outside = parseSweepSpec(sweepYaml('koutside', join(root, 'elsewhere'), 'parameters:\n  seed: [1]\n')
      .replace('executor: { cores: 2 }', `executor: { type: kubernetes, kubernetes: { image: shardwise:test, sharedVolume: { claimName: ${FAKE_SWEEP_NAME}, mountPath: ${shared} } } }`));
    await assert.rejects(KubernetesExecutor.connect(outside, { kubeconfig: fake.kubeconfig, dataDir: data }),
      (err) => err instanceof SweepSpecError && err.message.includes(`outputDir: the sweep folder ${join(root, 'elsewhere', 'koutside')} must lie on the shared volume mounted at ${shared}`));
  });
});
