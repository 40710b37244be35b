import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tls from 'node:tls';
import { CertificateError, type CertificatePair, type DevCertificates, identityOf, makeDevCertificates } from '../common';
import { callIdentity } from '../common/security';

const SHARDWISE = resolve(__dirname, '../bin/shardwise');

function pem(pair: CertificatePair): { cert: Buffer; key: Buffer } {
  return { cert: readFileSync(pair.cert), key: readFileSync(pair.key) };
}

/**
 * A real mutual-TLS handshake: a server holding the coordinator's certificate that requires a client
 * certificate from its CA, and a client presenting `client` (or none) that trusts `trust`. Resolves with
 * the identity the server read from the client's certificate; rejects with what each side said (with TLS
 * 1.3 the client may see only a closed connection, and OpenSSL tells the server only of a reset).
 */
async function handshake(server: DevCertificates, client: CertificatePair | undefined, trust: string): Promise<string> {
  let verdict!: (outcome: { identity?: string; refused?: string }) => void;
  const serverSaid = new Promise<{ identity?: string; refused?: string }>((resolve) => (verdict = resolve));
  const listener = tls.createServer({ ...pem(server.coordinator), ca: readFileSync(server.ca.cert), requestCert: true, rejectUnauthorized: true }, (socket) => {
    const peer = socket.getPeerX509Certificate();
    const identity = peer && identityOf(peer);
    verdict({ identity: identity ? `${identity.role}/${identity.name}` : 'none' });
    socket.end();
  });
  listener.on('tlsClientError', (err) => verdict({ refused: err.message }));
  await new Promise<void>((ready) => listener.listen(0, '127.0.0.1', ready));
  try {
    const { port } = listener.address() as AddressInfo;
    const clientError = await new Promise<string | undefined>((done) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(trust), ...(client ? pem(client) : {}) });
      socket.on('secureConnect', () => socket.resume());
      socket.on('close', () => done(undefined));
      socket.on('error', (err) => done(err.message));
    });
    const said = await serverSaid;
    if (said.refused !== undefined || clientError !== undefined) {
      throw new Error(`refused (server: ${said.refused ?? 'accepted'}; client: ${clientError ?? 'accepted'})`);
    }
    return said.identity as string;
  } finally {
    listener.close();
  }
}

describe('shardwise certs: a development CA and one certificate per identity', function () {
  this.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'shardwise-certs-'));
  let job: DevCertificates;
  let other: DevCertificates;

  before(async () => {
    job = await makeDevCertificates({ outDir: join(dir, 'job'), workerIds: ['worker-1', 'worker-2'] });
    other = await makeDevCertificates({ outDir: join(dir, 'other'), workerIds: ['worker-1'] });
  });

  it('issues certificates chained to the CA, each naming its identity, with private keys readable by the owner only', () => {
    const ca = new X509Certificate(readFileSync(job.ca.cert));
    assert.ok(ca.ca, 'the CA certificate is a CA');
    const issued = [job.coordinator, ...job.workers.values(), ...job.operators.values()];
    assert.deepEqual(issued.map((p) => identityOf(readFileSync(p.cert))), [
      { role: 'coordinator', name: '' },
      { role: 'worker', name: 'worker-1' },
      { role: 'worker', name: 'worker-2' },
      { role: 'operator', name: 'admin' },
    ]);
    for (const pair of issued) {
      const cert = new X509Certificate(readFileSync(pair.cert));
      assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), `${pair.cert} is signed by the job's CA`);
      assert.equal(statSync(pair.key).mode & 0o777, 0o600, `${pair.key} mode`);
    }
    assert.ok(new X509Certificate(readFileSync(job.coordinator.cert)).checkHost('localhost'));
    assert.ok(new X509Certificate(readFileSync(job.coordinator.cert)).checkIP('127.0.0.1'));
    assert.equal(statSync(job.joinToken).mode & 0o777, 0o600);
    assert.match(readFileSync(job.joinToken, 'utf8'), /^[A-Za-z0-9_-]{43}\n$/);
  });

  it("reads a call's identity from its certificate, a new certificate object each call (as grpc-js gives one)", () => {
    const callOn = (pair: CertificatePair | undefined) => {
      const cert = pair && new X509Certificate(readFileSync(pair.cert));
      return { getAuthContext: () => ({ sslPeerCertificate: cert && ({ raw: cert.raw, fingerprint256: cert.fingerprint256 } as tls.PeerCertificate) }) };
    };
    for (let call = 0; call < 2; call++) {
      assert.deepEqual(callIdentity(callOn(job.workers.get('worker-1'))), { role: 'worker', name: 'worker-1' });
      assert.deepEqual(callIdentity(callOn(job.workers.get('worker-2'))), { role: 'worker', name: 'worker-2' });
      assert.deepEqual(callIdentity(callOn(other.workers.get('worker-1'))), { role: 'worker', name: 'worker-1' });
      assert.deepEqual(callIdentity(callOn(job.operators.get('admin'))), { role: 'operator', name: 'admin' });
      assert.equal(callIdentity(callOn(undefined)), undefined);
    }
  });

  it('a worker certificate completes mutual TLS with the coordinator, which reads the worker id from it', async () => {
    assert.equal(await handshake(job, job.workers.get('worker-2'), job.ca.cert), 'worker/worker-2');
    assert.equal(await handshake(job, job.operators.get('admin'), job.ca.cert), 'operator/admin');
  });

  it('refuses a client without a certificate, and one whose certificate comes from another CA', async () => {
    await assert.rejects(handshake(job, undefined, job.ca.cert), /^Error: refused \(server: .*peer did not return a certificate/);
    await assert.rejects(handshake(job, other.workers.get('worker-1'), job.ca.cert), /^Error: refused \(server: (?!accepted)/);
    // And a client that trusts only its own CA refuses the job's coordinator.
    await assert.rejects(handshake(job, other.workers.get('worker-1'), other.ca.cert), /client: self-signed certificate in certificate chain\)/);
  });

  it('run again on the same folder, keeps every file as it was and issues only what is new', async () => {
    const before = readFileSync(job.workers.get('worker-1')!.cert);
    const caBefore = readFileSync(job.ca.cert);
    const again = await makeDevCertificates({ outDir: job.dir, workerIds: ['worker-1', 'worker-3'] });
    assert.deepEqual(again.written.map((f) => f.slice(job.dir.length + 1)), ['workers/worker-3.crt', 'workers/worker-3.key']);
    assert.ok(again.kept.includes(job.workers.get('worker-1')!.cert));
    assert.deepEqual(readFileSync(again.workers.get('worker-1')!.cert), before);
    assert.deepEqual(readFileSync(again.ca.cert), caBefore);
    const ca = new X509Certificate(caBefore);
    assert.ok(new X509Certificate(readFileSync(again.workers.get('worker-3')!.cert)).verify(ca.publicKey), 'issued by the kept CA');
  });

  it('refuses a worker id that cannot be an identity, and names a missing openssl', async () => {
    await assert.rejects(makeDevCertificates({ outDir: join(dir, 'bad'), workerIds: ['../evil'] }),
      (err: unknown) => err instanceof CertificateError && /worker id: expected 1-63 letters.*"\.\.\/evil"/.test(err.message));
    await assert.rejects(makeDevCertificates({ outDir: join(dir, 'none'), workerIds: [], openssl: 'openssl-not-installed' }),
      (err: unknown) => err instanceof CertificateError && /openssl-not-installed req: not found; install it/.test(err.message));
  });

  it('`shardwise certs` writes the files and says what it wrote', async () => {
    const out = join(dir, 'cli');
    const stdout = await new Promise<string>((done, fail) => {
      execFile(SHARDWISE, ['certs', '--out', out, '--workers', '2', '--worker-id', 'shardwise-worker-0'], (err, text, stderr) =>
        (err ? fail(new Error(`${err.message}\n${stderr}`)) : done(text)));
    });
    assert.match(stdout, new RegExp(`^certificates in ${out}: 13 files written, 0 kept$`, 'm'));
    assert.deepEqual(identityOf(readFileSync(join(out, 'workers', 'shardwise-worker-0.crt'))), { role: 'worker', name: 'shardwise-worker-0' });
  });
});
