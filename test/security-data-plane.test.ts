/**
 * The allreduce data plane over mutual TLS, on real loopback sockets: members with certificates from the
 * job's CA reduce as they do in plaintext (bit for bit), and a plaintext client, a certificate from another
 * CA, or a certified peer claiming another member's id is cut, said so, and changes nothing for the members;
 * links are TLS 1.3 with AES-128-GCM, the cheapest suite per byte here.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import {
  AllreduceError,
  type AllreduceMember,
  connectMutualTls,
  COORDINATOR_MEMBER_ID,
  DataPlane,
  type DevCertificates,
  encodeFrameHeader,
  loadTlsCredentials,
  makeDevCertificates,
  TensorChannel,
  type TlsCredentials,
} from '../common';

const FLOATS = 10_000;

/** The host and port of a plane's `host:port` address (loopback in these tests). */
function targetOf(p: DataPlane): { host: string; port: number } {
  const colon = p.address.lastIndexOf(':');
  return { host: p.address.slice(0, colon), port: Number(p.address.slice(colon + 1)) };
}

function inputOf(member: number): Float32Array {
  return Float32Array.from({ length: FLOATS }, (_, i) => Math.sin(i * 0.37 + member * 1.3) * 10 ** ((i % 7) - 3));
}

/** Resolves once `condition` holds, checking on every turn of the event loop. */
async function until(condition: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!condition()) {
    if (Date.now() - t0 > limitMs) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('security: the data plane over mutual TLS', function () {
  this.timeout(60_000);
  let dir: string;
  let certs: DevCertificates;
  let foreign: DevCertificates;
  const planes: DataPlane[] = [];
  const refusals: string[] = [];

  const credentials = (id: string, from = (): DevCertificates => certs): TlsCredentials =>
    loadTlsCredentials(from().dir, id === COORDINATOR_MEMBER_ID ? { role: 'coordinator', name: '' } : { role: 'worker', name: id });

  async function plane(id: string, secure = true): Promise<DataPlane> {
    const p = await DataPlane.listen({ tls: secure ? credentials(id) : undefined, onRefused: (why) => refusals.push(`${id}: ${why}`) });
    planes.push(p);
    return p;
  }

  /** One reduction among `members` (id and plane); every member's result, or its error. */
  async function reduce(key: string, members: [string, DataPlane][]): Promise<Array<Float32Array | AllreduceError>> {
    const list: AllreduceMember[] = members.map(([id, p]) => ({ id, address: p.address, ...(id === COORDINATOR_MEMBER_ID ? { role: 'observer' as const } : {}) }));
    const data = members.map((_, i) => inputOf(i));
    const settled = await Promise.allSettled(members.map(([, p], rank) => p.allreduce({ key, members: list, rank, timeoutMs: 10_000 }, data[rank])));
    return settled.map((s, i) => (s.status === 'fulfilled' ? data[i] : (s.reason as AllreduceError)));
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-security-plane-'));
    [certs, foreign] = await Promise.all([
      makeDevCertificates({ outDir: path.join(dir, 'certs'), workerIds: ['worker-1', 'worker-2', 'worker-3'] }),
      makeDevCertificates({ outDir: path.join(dir, 'foreign'), workerIds: ['worker-1'] }),
    ]);
  });
  afterEach(async () => {
    await Promise.all(planes.splice(0).map((p) => p.close()));
    refusals.length = 0;
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('two workers and the coordinator (an observer) reduce over TLS to the same bytes as in plaintext', async () => {
    const secure = await reduce('tls/1', [['worker-1', await plane('worker-1')], ['worker-2', await plane('worker-2')], [COORDINATOR_MEMBER_ID, await plane(COORDINATOR_MEMBER_ID)]]);
    const plain = await reduce('plain/1', [['worker-1', await plane('worker-1', false)], ['worker-2', await plane('worker-2', false)], [COORDINATOR_MEMBER_ID, await plane(COORDINATOR_MEMBER_ID, false)]]);
    secure.forEach((r, i) => {
      assert.ok(r instanceof Float32Array, `member ${i}: ${String(r)}`);
      assert.deepEqual(Buffer.from(r.buffer), Buffer.from((plain[i] as Float32Array).buffer), `member ${i}: TLS and plaintext sums differ`);
    });
    assert.deepEqual(refusals, []);
  });

  it('a plaintext TCP client is cut at the handshake, said so, and the next reduction runs', async () => {
    const [p1, p2] = [await plane('worker-1'), await plane('worker-2')];
    const target = targetOf(p1);
    const socket = net.connect(target);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    // A hello frame in clear, as an old or hostile member would send it.
    socket.write(encodeFrameHeader([], { type: 'allreduce-hello', from: 'worker-2', address: p2.address, to: 'worker-1' }));
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await until(() => refusals.length > 0, 'the refusal');
    assert.match(refusals[0], /^worker-1: data plane: refused 127\.0\.0\.1:\d+: TLS handshake failed \(.*(wrong version number|packet length too long|http request|unknown protocol)\)$/);
    const out = await reduce('after-plain', [['worker-1', p1], ['worker-2', p2]]);
    out.forEach((r, i) => assert.ok(r instanceof Float32Array, `member ${i}: ${String(r)}`));
  });

  it('a peer with a certificate from another CA is cut at the handshake, said so', async () => {
    const p1 = await plane('worker-1');
    const target = targetOf(p1);
    const stranger = credentials('worker-1', () => foreign);
    // It trusts the job's CA (it could have fetched ca.crt) but its own certificate is from another CA.
    const failed = await new Promise<string>((resolve) => {
      const socket = tls.connect({ ...target, ca: fs.readFileSync(certs.ca.cert), cert: stranger.cert, key: stranger.key, checkServerIdentity: () => undefined });
      socket.on('error', (err) => resolve(err.message));
      socket.on('secureConnect', () => socket.resume());
      socket.on('close', () => resolve('closed'));
    });
    assert.equal(failed, 'closed', 'the server closes the connection');
    await until(() => refusals.length > 0, 'the refusal');
    assert.match(refusals[0], /^worker-1: data plane: refused 127\.0\.0\.1:\d+: its certificate is not from the job's CA \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)$/);
  });

  it("a certified worker saying hello as another member is cut, named in the refusal; the members' reduction is untouched", async () => {
    const [p1, p2] = [await plane('worker-1'), await plane('worker-2')];
    const target = targetOf(p1);
    const three = credentials('worker-3');
    const socket = tls.connect({ ...target, ca: three.ca, cert: three.cert, key: three.key, checkServerIdentity: () => undefined });
    await new Promise<void>((resolve) => socket.once('secureConnect', resolve));
    const impostor = new TensorChannel(socket);
    await impostor.send([], { type: 'allreduce-hello', from: 'worker-2', address: p2.address, to: 'worker-1' });
    await assert.rejects(impostor.receive({ timeoutMs: 10_000 }), /the peer closed the connection/);
    assert.equal(refusals.length, 1);
    assert.match(refusals[0], /^worker-1: data plane: refused a hello from 'worker-2' on 127\.0\.0\.1:\d+: its certificate names spiffe:\/\/shardwise\/worker\/worker-3, which may not act as 'worker-2'$/);
    const out = await reduce('after-impostor', [['worker-1', p1], ['worker-2', p2]]);
    out.forEach((r, i) => assert.ok(r instanceof Float32Array, `member ${i}: ${String(r)}`));
  });

  it("a member listed at an address where another identity listens is not sent to: the reduction fails naming both", async () => {
    const [p1, p3] = [await plane('worker-1'), await plane('worker-3')];
    // worker-2 is said to be at worker-3's address: worker-1 connects there and finds worker-3's certificate.
    const members: AllreduceMember[] = [{ id: 'worker-1', address: p1.address }, { id: 'worker-2', address: p3.address }];
    await assert.rejects(p1.allreduce({ key: 'misdirected', members, rank: 0, timeoutMs: 5_000 }, inputOf(0)),
      (err: unknown) => err instanceof AllreduceError &&
        /expected spiffe:\/\/shardwise\/worker\/worker-2 at 127\.0\.0\.1:\d+, its certificate names spiffe:\/\/shardwise\/worker\/worker-3/.test(err.message));
  });
  it('links negotiate TLS 1.3 with AES-128-GCM, and a TLS 1.2-only client is refused', async () => {
    const p1 = await plane('worker-1');
    const target = targetOf(p1);
    const socket = await connectMutualTls(target.host, target.port, credentials('worker-2'), { role: 'worker', name: 'worker-1' });
    assert.deepEqual([socket.getProtocol(), socket.getCipher().standardName], ['TLSv1.3', 'TLS_AES_128_GCM_SHA256']);
    socket.destroy();
    const two = credentials('worker-2');
    const old = tls.connect({ ...target, ca: two.ca, cert: two.cert, key: two.key, maxVersion: 'TLSv1.2', checkServerIdentity: () => undefined });
    await assert.rejects(once(old, 'secureConnect'), /protocol version|unsupported protocol/);
  });
});
