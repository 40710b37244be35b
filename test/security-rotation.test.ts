/**
 * Certificates rotated on disk are taken without a restart: a real coordinator (gRPC) and real data planes
 * whose credential folders are laid out as a mounted Kubernetes Secret are moved to a new CA made by
 * `makeDevCertificates`; afterwards a client holding only the new CA connects and one holding only the old
 * is refused, while connections opened before the rotation go on. A half-written or mismatched file is
 * refused, named, logged and counted, and the certificate in force stays.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  type AllreduceMember,
  CertificateError,
  connectMutualTls,
  DataPlane,
  type DevCertificates,
  grpcChannelCredentials,
  GrpcStatus,
  type Identity,
  initBackend,
  loadTlsCredentials,
  makeDevCertificates,
  type ReloadOutcome,
  ReloadingTlsCredentials,
  RpcError,
  type TlsCredentials,
} from '../common';
import { type RunningCoordinator, startCoordinator } from '../coordinator';
import { FakeWorker } from './coordinator-fake-worker';
import { pollUntil, withDeadline } from './support/deadline';
import { SecretVolume } from './support/secret-volume';
import { tinyJobSpec } from './support/tiny-job';

const COORDINATOR: Identity = { role: 'coordinator', name: '' };
const worker = (name: string): Identity => ({ role: 'worker', name });
/** Short, so a test waits a fraction of a second for the next look at the files. */
const RELOAD_MS = 50;

/** The next outcome `tls` reports that has `result`. */
function next(tls: ReloadingTlsCredentials, result: ReloadOutcome['result']): Promise<ReloadOutcome> {
  return withDeadline(new Promise<ReloadOutcome>((resolve) => {
    const off = tls.onOutcome((o) => {
      if (o.result !== result) return;
      off();
      resolve(o);
    });
  }), 20_000, `a '${result}' outcome for ${tls.files.cert}`);
}

/** Writes the first half of `file`'s current content over it, as a copy caught mid-way would leave it. */
function halfWrite(file: string): void {
  const bytes = fs.readFileSync(file);
  fs.writeFileSync(fs.realpathSync(file), bytes.subarray(0, bytes.length >> 1));
}

const serialOf = (pem: Buffer): string => new X509Certificate(pem).serialNumber;

describe('security: certificates rotated on disk are reloaded without a restart', function () {
  this.timeout(120_000);
  let dir: string;
  let oldCa: DevCertificates;
  let newCa: DevCertificates;
  const watched: Array<() => void> = [];

  /** Credentials of `identity` from a Secret-like mount of `source`, watched every RELOAD_MS, logging into `lines`. */
  function mount(name: string, source: DevCertificates, identity: Identity, lines: string[] = []): { volume: SecretVolume; tls: ReloadingTlsCredentials } {
    const volume = new SecretVolume(path.join(dir, name), source.dir);
    const tls = ReloadingTlsCredentials.load(volume.dir, identity, { intervalMs: RELOAD_MS, log: (line) => lines.push(line) });
    return { volume, tls };
  }

  before(async () => {
    await initBackend({ prefer: 'wasm', log: () => undefined });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-rotation-'));
    const ids = ['worker-1', 'worker-2', 'worker-3', 'worker-4'];
    [oldCa, newCa] = await Promise.all([
      makeDevCertificates({ outDir: path.join(dir, 'ca-before'), workerIds: ids }),
      makeDevCertificates({ outDir: path.join(dir, 'ca-after'), workerIds: ids }),
    ]);
  });
  afterEach(() => watched.splice(0).forEach((off) => off()));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a rotated set that is half-written, mismatched or from outside the CA is refused naming the file; the set in force stays', () => {
    const lines: string[] = [];
    const { volume, tls } = mount('unit', oldCa, worker('worker-1'), lines);
    const inForce = tls.cert;
    const refusedWith = (pattern: RegExp): void => {
      const outcome = tls.reload();
      assert.ok(outcome?.result === 'refused', `expected a refusal, got ${JSON.stringify(outcome)}`);
      assert.ok(outcome.error instanceof CertificateError);
      assert.match(outcome.error.message, pattern);
      assert.equal(tls.cert, inForce, 'the certificate in force changed');
      assert.equal(tls.reload(), undefined, 'the same refused content is reported once');
    };
    const staged = path.join(dir, 'unit-staged');
    const stage = (edit: (d: string) => void): void => {
      fs.rmSync(staged, { recursive: true, force: true });
      fs.cpSync(oldCa.dir, staged, { recursive: true });
      edit(staged);
      volume.update(staged);
    };
    const crt = path.join(volume.dir, 'workers/worker-1.crt');
    const key = path.join(volume.dir, 'workers/worker-1.key');

    stage((d) => fs.writeFileSync(path.join(d, 'workers/worker-1.crt'), fs.readFileSync(path.join(oldCa.dir, 'workers/worker-1.crt')).subarray(0, 300)));
    refusedWith(new RegExp(`^${crt}: expected a PEM certificate`));
    stage((d) => fs.copyFileSync(path.join(oldCa.dir, 'workers/worker-2.key'), path.join(d, 'workers/worker-1.key')));
    refusedWith(new RegExp(`^${key}: expected the private key of ${crt}`));
    stage((d) => fs.copyFileSync(path.join(oldCa.dir, 'workers/worker-2.crt'), path.join(d, 'workers/worker-1.crt')));
    refusedWith(new RegExp(`^${crt}: expected a certificate for spiffe://shardwise/worker/worker-1, it is for spiffe://shardwise/worker/worker-2$`));
    // The new pair without the new CA: the set is inconsistent, whichever half came first.
    stage((d) => ['crt', 'key'].forEach((x) => fs.copyFileSync(path.join(newCa.dir, `workers/worker-1.${x}`), path.join(d, `workers/worker-1.${x}`))));
    refusedWith(new RegExp(`^${crt}: expected a certificate issued by the CA in ${path.join(volume.dir, 'ca.crt')}`));
    stage((d) => fs.writeFileSync(path.join(d, 'ca.crt'), 'not a certificate\n'));
    refusedWith(new RegExp(`^${path.join(volume.dir, 'ca.crt')}: expected one or more PEM certificates`));
    assert.equal(lines.length, 5);
    lines.forEach((line) => assert.match(line, /^security: refused the rotated credentials of spiffe:\/\/shardwise\/worker\/worker-1: .*; the previous certificate stays in force$/));

    // A bundle of the old and the new CA with the new pair is a valid set (the usual way to roll a CA).
    stage((d) => {
      fs.writeFileSync(path.join(d, 'ca.crt'), Buffer.concat([fs.readFileSync(oldCa.ca.cert), fs.readFileSync(newCa.ca.cert)]));
      ['crt', 'key'].forEach((x) => fs.copyFileSync(path.join(newCa.dir, `workers/worker-1.${x}`), path.join(d, `workers/worker-1.${x}`)));
    });
    assert.equal(tls.reload()?.result, 'reloaded');
    assert.equal(serialOf(tls.cert), serialOf(fs.readFileSync(path.join(newCa.dir, 'workers/worker-1.crt'))));
    assert.match(lines[5], /^security: reloaded the rotated credentials of spiffe:\/\/shardwise\/worker\/worker-1 from .*; new connections use them, open ones go on$/);
    assert.equal(tls.reload(), undefined, 'nothing changed since');
  });

  it('the data plane: pooled links go on, new links use the new CA, the old CA is refused, a half-written file changes nothing', async () => {
    const refusals: string[] = [];
    const w1 = mount('plane-1', oldCa, worker('worker-1'));
    const w2 = mount('plane-2', oldCa, worker('worker-2'));
    const planes = await Promise.all([w1, w2].map(({ tls }, i) => DataPlane.listen({ tls, onRefused: (why) => refusals.push(`worker-${i + 1}: ${why}`) })));
    try {
      const reduce = async (key: string, members: Array<[string, DataPlane]>): Promise<void> => {
        const list: AllreduceMember[] = members.map(([id, p]) => ({ id, address: p.address }));
        await Promise.all(members.map(([, p], rank) => p.allreduce({ key, members: list, rank, timeoutMs: 20_000 }, Float32Array.from({ length: 1000 }, (_, i) => i * (rank + 1)))));
      };
      await reduce('before', [['worker-1', planes[0]], ['worker-2', planes[1]]]);
      const opened = planes[0].connectionsOpened + planes[1].connectionsOpened;

      const reloaded = [next(w1.tls, 'reloaded'), next(w2.tls, 'reloaded')];
      w1.volume.update(newCa.dir);
      w2.volume.update(newCa.dir);
      await Promise.all(reloaded);
      // The pooled links were made with the old certificates: they go on.
      await reduce('pooled', [['worker-1', planes[0]], ['worker-2', planes[1]]]);
      assert.equal(planes[0].connectionsOpened + planes[1].connectionsOpened, opened, 'the reduction reused the pooled links');
      // A member that has only the new CA connects to both, and both connect to it.
      const w3 = await DataPlane.listen({ tls: loadTlsCredentials(newCa.dir, worker('worker-3')) });
      planes.push(w3);
      await reduce('new-member', [['worker-1', planes[0]], ['worker-2', planes[1]], ['worker-3', w3]]);
      // Only the old CA: refused both ways.
      const [host, port] = [planes[0].address.split(':')[0], Number(planes[0].address.split(':')[1])];
      await assert.rejects(connectMutualTls(host, port, loadTlsCredentials(oldCa.dir, worker('worker-3')), worker('worker-1')), /self-signed certificate in certificate chain/);
      await withDeadline((async () => { while (refusals.length === 0) await new Promise((r) => setImmediate(r)); })(), 10_000, "worker-1's refusal");
      assert.match(refusals[0], /^worker-1: data plane: refused .*: TLS handshake failed/);

      const refused = next(w1.tls, 'refused');
      halfWrite(path.join(w1.volume.dir, 'workers/worker-1.crt'));
      assert.match((await refused as Extract<ReloadOutcome, { result: 'refused' }>).error.message, new RegExp(`^${path.join(w1.volume.dir, 'workers/worker-1.crt')}: expected a PEM certificate`));
      // The client trusts only the new CA: its handshake succeeding shows the new certificate is still served.
      const socket = await connectMutualTls(host, port, loadTlsCredentials(newCa.dir, worker('worker-4')), worker('worker-1'));
      socket.destroy();
    } finally {
      await Promise.all(planes.map((p) => p.close()));
    }
  });

  describe('the coordinator gRPC server and a worker gRPC client', () => {
    let coordinator: RunningCoordinator;
    let coordinatorTls: { volume: SecretVolume; tls: ReloadingTlsCredentials };
    const log: string[] = [];
    const clients: FakeWorker[] = [];
    const token = (): string => fs.readFileSync(oldCa.joinToken, 'utf8').trim();
    const client = (tls: TlsCredentials): FakeWorker => {
      const w = new FakeWorker(coordinator.grpcAddress, { credentials: grpcChannelCredentials(tls), joinToken: token() });
      clients.push(w);
      return w;
    };
    const metric = async (result: string): Promise<number> => {
      const text = await (await fetch(coordinator.metricsUrl)).text();
      const line = text.split('\n').find((l) => l.startsWith(`shardwise_tls_reloads_total{result="${result}"}`));
      assert.ok(line, `no shardwise_tls_reloads_total{result="${result}"} in /metrics`);
      return Number(line.split(' ')[1]);
    };
    const unavailable = async (call: Promise<unknown>, pattern: RegExp): Promise<void> => {
      const err = await call.then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof RpcError, `expected a refusal, got ${String(err)}`);
      assert.equal(err.codeName, GrpcStatus[GrpcStatus.UNAVAILABLE], err.details);
      assert.match(err.details, pattern);
    };

    before(async () => {
      const spec = tinyJobSpec('tls-rotation', dir, 'minWorkers: 5, desiredWorkers: 5');
      coordinatorTls = mount('coordinator', oldCa, COORDINATOR, log);
      coordinator = await startCoordinator({ spec, log: () => undefined, progressStream: fs.createWriteStream('/dev/null'), tls: coordinatorTls.tls });
    });
    after(async () => {
      clients.forEach((c) => c.close());
      await coordinator?.close();
    });

    it('after a rotation to a new CA, a client with only the new CA connects, one with only the old is refused, an open channel goes on', async () => {
      const early = client(loadTlsCredentials(oldCa.dir, worker('worker-1')));
      await early.register('worker-1');
      assert.equal(await metric('reloaded'), 0);

      const reloaded = next(coordinatorTls.tls, 'reloaded');
      coordinatorTls.volume.update(newCa.dir);
      await reloaded;
      assert.equal(await metric('reloaded'), 1);
      assert.match(log.at(-1) ?? '', /^security: reloaded the rotated credentials of spiffe:\/\/shardwise\/coordinator /);

      await early.getConfig(); // its connection was made before: it goes on
      await client(loadTlsCredentials(newCa.dir, worker('worker-2'))).register('worker-2');
      await unavailable(client(loadTlsCredentials(oldCa.dir, worker('worker-3'))).register('worker-3'),
        /No connection established\. Last error: .*self-signed certificate in certificate chain/);
    });

    it("a worker's channel picks up its own rotated certificate for its next connection", async () => {
      const lines: string[] = [];
      const own = mount('worker-3', oldCa, worker('worker-3'), lines);
      const w = client(own.tls);
      await unavailable(w.register('worker-3'), /No connection established/);
      const reloaded = next(own.tls, 'reloaded');
      own.volume.update(newCa.dir);
      await reloaded;
      // The channel is in backoff after its failed connection: a real worker retries (call-policy.ts), so do we.
      await pollUntil(() => w.register('worker-3'), { timeoutMs: 20_000, intervalMs: 100, what: "worker-3's registration with its rotated certificate" });
    });

    it('a half-written certificate is refused, named, logged and counted; the coordinator keeps serving with the one in force', async () => {
      const refused = next(coordinatorTls.tls, 'refused');
      const file = path.join(coordinatorTls.volume.dir, 'coordinator.crt');
      halfWrite(file);
      const outcome = await refused as Extract<ReloadOutcome, { result: 'refused' }>;
      assert.equal(outcome.error.subject, file);
      assert.equal(await metric('refused'), 1);
      assert.equal(await metric('reloaded'), 1);
      assert.match(log.at(-1) ?? '', new RegExp(`^security: refused the rotated credentials of spiffe://shardwise/coordinator: ${file}: expected a PEM certificate.*; the previous certificate stays in force$`));
      await client(loadTlsCredentials(newCa.dir, worker('worker-4'))).register('worker-4');
    });
  });
});
