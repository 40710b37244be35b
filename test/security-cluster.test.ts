import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { exitCodeOf, type ManagedChild } from '../launcher';
import { ClusterHarness, TEST_BACKEND } from './support/cluster';
import { assertSameWeightsHash, assertTrainingFinished, finalRunWeights, runRecords } from './support/cluster-checks';
import { EPOCHS, testJobYaml } from './support/cluster-data';
import { shardwiseScale } from './support/shardwise-cli';

// `shardwise cluster` secured by default: a development CA, a certificate per process and a join token made
// for the run, mutual TLS on gRPC and on the allreduce data plane, with real processes. The secure job ends
// with the same weights as the same job run `--insecure` (TLS moves the same bytes); a worker process
// started without credentials is refused, says why, and the job goes on.
describe('security: a local cluster over mutual TLS', function () {
  this.timeout(300_000);
  let harness: ClusterHarness;

  before(async () => {
    harness = await ClusterHarness.create();
  });

  after(async () => {
    await harness?.dispose();
  });

  async function runDirOf(child: ManagedChild): Promise<string> {
    const [, runDir] = await child.waitForLine(/^\[cluster\] run directory: (.+)$/, { timeoutMs: 120_000 });
    return runDir;
  }

  it('a secure job ends with the weights of the insecure one; a worker without credentials is refused and the job goes on', async () => {
    // minWorkers 3 with 2 workers started: the secure job waits, so the intruder meets a live coordinator
    // however long it takes to start; `shardwise scale` (itself over mutual TLS) then lets the job run.
    const secure = harness.launchCluster(harness.writeJob('secure', testJobYaml('secure', { minWorkers: 3 })));
    const [, tlsDir] = await secure.waitForLine(/^\[cluster\] security: mutual TLS with a development CA and a join token in (\S+) /, { timeoutMs: 60_000 });
    const secureRun = await runDirOf(secure);
    const [, grpc] = await secure.waitForLine(/^\[cluster\] running 2 worker\(s\); change it with: shardwise scale --coordinator (\S+) --tls-dir \S+ --workers N$/,
      { timeoutMs: 120_000 });

    // An intruder on the same machine: the project's own worker, without --tls-dir.
    const intruder = harness.launch('intruder', ['worker', '--coordinator', grpc, '--id', 'worker-1', '--backend', TEST_BACKEND, '--retry-limit', '3']);
    const intruderExit = await intruder.exited;
    assert.notEqual(exitCodeOf(intruderExit), 0, 'the intruder was admitted');
    assert.ok(intruder.lines().some((l) => /warning: no --tls-dir/.test(l)), intruder.tail(20));
    assert.ok(intruder.lines().some((l) => /coordinator .*unreachable|UNAVAILABLE/.test(l) && /Connection dropped|Failed to connect|socket|ECONNRESET|TLS|certificate/i.test(l)), intruder.tail(20));
    const up = await shardwiseScale(grpc, tlsDir, 3);
    assert.equal(up.code, 0, `shardwise scale --workers 3: ${up.output}`);

    const insecure = harness.launchCluster(harness.writeJob('insecure', testJobYaml('insecure', { minWorkers: 2 })), ['--insecure']);
    const insecureRun = await runDirOf(insecure);
    assert.ok(insecure.lines().some((l) => /^\[cluster\] warning: --insecure: plaintext gRPC and data plane/.test(l)), insecure.tail(20));

    assert.equal(exitCodeOf(await secure.exited), 0, secure.tail(60));
    assert.equal(exitCodeOf(await insecure.exited), 0, insecure.tail(60));
    assert.ok(secure.lines().some((l) => /security: mutual TLS as spiffe:\/\/shardwise\/worker\/worker-1/.test(l)), secure.tail(40));
    assert.ok(!secure.lines().some((l) => /data plane: refused/.test(l)), 'a member was refused on the data plane');
    assert.equal(fs.existsSync(tlsDir), false, `the credentials folder ${tlsDir} outlived the cluster`);
    assertTrainingFinished(runRecords(secureRun), EPOCHS);
    assertSameWeightsHash(finalRunWeights(secureRun), finalRunWeights(insecureRun), 'mutual TLS vs --insecure');
  });
});
