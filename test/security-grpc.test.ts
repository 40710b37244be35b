import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChannelCredentials } from '@grpc/grpc-js';
import {
  createCoordinatorClient,
  type DevCertificates,
  grpcChannelCredentials,
  GrpcStatus,
  initBackend,
  loadTlsCredentials,
  makeDevCertificates,
  ReloadingTlsCredentials,
  RpcError,
  serverStreamCall,
  type TlsCredentials,
  unaryCall,
} from '../common';
import { type RunningCoordinator, startCoordinator } from '../coordinator';
import { StepKind } from '../proto';
import { FakeWorker } from './coordinator-fake-worker';
import { tinyJobSpec } from './support/tiny-job';

/** Awaits a call that must be refused with `code` and details matching `pattern`; returns the details. */
async function refused(call: Promise<unknown>, code: number, pattern: RegExp): Promise<string> {
  const error = await call.then(() => undefined, (err: unknown) => err);
  assert.ok(error instanceof RpcError, `expected the call to be refused, got ${error === undefined ? 'success' : String(error)}`);
  assert.equal(error.codeName, GrpcStatus[code], `status of: ${error.details}`);
  assert.match(error.details, pattern);
  return error.details;
}

// Mutual TLS and the join token on the coordinator's gRPC port: a real coordinator on 127.0.0.1:0 with
// certificates from `makeDevCertificates`, callers with real TLS clients. Every refusal names what is
// missing and leaks nothing (job id, spec, fingerprint); after all of them the job trains on.
describe('security: mutual TLS and the join token on gRPC', function () {
  this.timeout(120_000);
  let dir: string;
  let certs: DevCertificates;
  let foreign: DevCertificates;
  let coordinator: RunningCoordinator;
  const clients: { close(): void }[] = [];

  const tlsOf = (role: 'worker' | 'operator', name: string, from = certs): TlsCredentials =>
    loadTlsCredentials(from.dir, { role, name });
  const token = (): string => fs.readFileSync(certs.joinToken, 'utf8').trim();

  function worker(credentials: ChannelCredentials, joinToken?: string): FakeWorker {
    const w = new FakeWorker(coordinator.grpcAddress, { credentials, joinToken });
    clients.push(w);
    return w;
  }

  /** Nothing an attacker could use is in a refusal: not the job's name, spec, bus URL or fingerprint. */
  function leaksNothing(details: string): void {
    assert.doesNotMatch(details, /sha256:[0-9a-f]{32}/, 'the model fingerprint');
    assert.doesNotMatch(details, /tls-grpc|small_cnn|batchSize|runsDir/, 'the job id or spec');
  }

  before(async () => {
    await initBackend({ prefer: 'wasm', log: () => undefined });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-security-grpc-'));
    [certs, foreign] = await Promise.all([
      makeDevCertificates({ outDir: path.join(dir, 'certs'), workerIds: ['worker-1', 'worker-2'] }),
      makeDevCertificates({ outDir: path.join(dir, 'foreign'), workerIds: ['worker-1'] }),
    ]);
    const spec = tinyJobSpec('tls-grpc', dir);
    coordinator = await startCoordinator({
      spec, log: () => undefined, progressStream: fs.createWriteStream('/dev/null'),
      // Watched credentials, as `--tls-dir` gives them: the refusals hold on grpc-js's certificate-provider path.
      tls: ReloadingTlsCredentials.load(certs.dir, { role: 'coordinator', name: '' }),
    });
  });

  after(async () => {
    clients.forEach((c) => c.close());
    await coordinator?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  // With TLS 1.3 the server judges the client's certificate after the client has finished its side of the
  // handshake: a missing one comes back as the 'certificate required' alert, a foreign one usually only as a
  // connection that failed (OpenSSL may send its 'unknown ca' alert after the client gave up reading).
  it('a client without a certificate is cut at the handshake', async () => {
    // It trusts the coordinator (same CA, identity checked) but presents nothing.
    const w = worker(ChannelCredentials.createSsl(fs.readFileSync(certs.ca.cert), null, null, { checkServerIdentity: () => undefined }), token());
    await refused(w.register('worker-1'), GrpcStatus.UNAVAILABLE, /No connection established\. Last error: .*alert certificate required/);
  });

  it('a client with a certificate from another CA is cut at the handshake', async () => {
    const w = worker(grpcChannelCredentials({ ...tlsOf('worker', 'worker-1', foreign), ca: fs.readFileSync(certs.ca.cert) }), token());
    await refused(w.register('worker-1'), GrpcStatus.UNAVAILABLE, /No connection established\. Last error: (Failed to connect|.*alert unknown ca)/);
  });

  it('a client trusting another CA refuses the coordinator (it cannot be fooled by a server of another job)', async () => {
    const w = worker(grpcChannelCredentials(tlsOf('worker', 'worker-1', foreign)), token());
    await refused(w.register('worker-1'), GrpcStatus.UNAVAILABLE, /No connection established\. Last error: Error: self-signed certificate in certificate chain/);
  });

  it('Register without the join token, or with a wrong one, is UNAUTHENTICATED and says which', async () => {
    const none = worker(grpcChannelCredentials(tlsOf('worker', 'worker-1')));
    leaksNothing(await refused(none.register('worker-1'), GrpcStatus.UNAUTHENTICATED,
      /Register: expected a join token in the 'shardwise-join-token' metadata .*got none/));
    const wrong = worker(grpcChannelCredentials(tlsOf('worker', 'worker-1')), `${token()}x`);
    leaksNothing(await refused(wrong.register('worker-1'), GrpcStatus.UNAUTHENTICATED, /Register: the join token is wrong/));
  });

  it("a worker certificate registering under another worker's id is PERMISSION_DENIED", async () => {
    const w = worker(grpcChannelCredentials(tlsOf('worker', 'worker-2')), token());
    leaksNothing(await refused(w.register('worker-1'), GrpcStatus.PERMISSION_DENIED,
      /worker_id 'worker-1' is not the id of the caller's certificate \(spiffe:\/\/shardwise\/worker\/worker-2\)/));
  });

  it('an operator certificate may not register, and a worker certificate may not Scale', async () => {
    const op = worker(grpcChannelCredentials(tlsOf('operator', 'admin')), token());
    leaksNothing(await refused(op.register('admin'), GrpcStatus.PERMISSION_DENIED,
      /register: needs a worker certificate, the caller presented spiffe:\/\/shardwise\/operator\/admin/));
    const client = createCoordinatorClient({ target: coordinator.grpcAddress, credentials: grpcChannelCredentials(tlsOf('worker', 'worker-1')) });
    clients.push(client);
    await refused(unaryCall('Scale', { deadlineMs: 10_000 }, (md, o, cb) => client.scale({ desiredWorkers: 5 }, md, o, cb)),
      GrpcStatus.PERMISSION_DENIED, /scale: needs an operator certificate, the caller presented spiffe:\/\/shardwise\/worker\/worker-1/);
  });

  it('GetWeights of an id that never registered is refused; a wrong fingerprint is named, never the right one', async () => {
    const client = createCoordinatorClient({ target: coordinator.grpcAddress, credentials: grpcChannelCredentials(tlsOf('worker', 'worker-2')) });
    clients.push(client);
    const weights = async (modelFingerprint: string): Promise<void> => {
      const stream = serverStreamCall('GetWeights', { deadlineMs: 10_000 }, (md, o) =>
        client.getWeights({ workerId: 'worker-2', includeOptimizerState: true, modelFingerprint }, md, o));
      await stream.next(); // a refusal comes before any message
    };
    leaksNothing(await refused(weights(''), GrpcStatus.NOT_FOUND, /worker 'worker-2' is not registered/));
    const w = worker(grpcChannelCredentials(tlsOf('worker', 'worker-2')), token());
    await w.register('worker-2');
    leaksNothing(await refused(weights('sha256:0123'), GrpcStatus.FAILED_PRECONDITION,
      /incompatible model: fingerprint sha256:0123 is not the job's model/));
  });

  it('after every refusal the job is intact: the certified worker joins with the token and trains, an operator scales', async () => {
    const w = worker(grpcChannelCredentials(tlsOf('worker', 'worker-1')), token());
    await w.join('worker-1');
    assert.equal(w.id, 'worker-1');
    const a = await w.pullUntil(StepKind.TRAIN);
    assert.equal(a.globalStep, 0, 'the first step: nothing was admitted before');
    assert.equal((await w.train(a)).globalStep, 0);
    const op = createCoordinatorClient({ target: coordinator.grpcAddress, credentials: grpcChannelCredentials(tlsOf('operator', 'admin')) });
    clients.push(op);
    const res = await unaryCall<{ desiredWorkers: number }>('Scale', { deadlineMs: 10_000 }, (md, o, cb) => op.scale({ desiredWorkers: 2 }, md, o, cb));
    assert.equal(res.desiredWorkers, 2);
  });
});
