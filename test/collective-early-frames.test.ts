/**
 * Data frames that reach a member before its reduction starts there (a sender does not wait for the
 * receiver's ready): kept within bounds and folded when the reduction starts, bit for bit as if they came
 * later; refused, closing the connection, when they are for a reduction that already ended here, for more
 * reductions than may wait, or beyond the bytes one reduction may hold. Real DataPlanes on loopback, and a
 * hand-written peer where a frame no real member sends is needed.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StreamClosedError, TensorChannel, type TensorChannelServer, connectTensorChannel, startTensorChannelServer } from '../common/wire';
import { DataPlane, type AllreduceCompression, type AllreduceMember, type DataPlaneOptions } from '../common/collective';
import { EARLY_FLOOR_BYTES, MAX_EARLY_KEYS } from '../common/collective/early-frames';
import { loadTlsCredentials, makeDevCertificates } from '../common';

/** Resolves once `condition` holds, checking on every turn of the event loop. */
async function until(condition: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!condition()) {
    if (Date.now() - t0 > limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Distinct per member and round, with values whose float32 sums depend on the order they are added in. */
function inputOf(member: number, floats: number, round: number): Float32Array {
  return Float32Array.from({ length: floats }, (_, i) => Math.sin(i * 0.37 + member * 11 + round * 3) * 10 ** ((i + member) % 6 - 2));
}

describe('collective early frames', () => {
  let planes: DataPlane[] = [];
  afterEach(async () => {
    await Promise.all(planes.map((p) => p.close()));
    planes = [];
  });

  /**
   * Pools the connections among 3 members, reduces once in order, then again with members 1 and 2 started
   * first; member 0 must hold both their parts before it starts, and end with the in-order run's bytes.
   */
  async function earlyThenInOrder(ids: string[], options: (id: string) => DataPlaneOptions, compression?: AllreduceCompression): Promise<void> {
    planes = await Promise.all(ids.map((id) => DataPlane.listen(options(id))));
    const members: AllreduceMember[] = planes.map((p, i) => ({ id: ids[i], address: p.address }));
    const floats = 30_000;
    const run = (key: string, rank: number, data: Float32Array) =>
      planes[rank].allreduce({ key, members, rank, timeoutMs: 10_000, compression }, data);
    const inOrder = planes.map((_, m) => inputOf(m, floats, 1));
    await Promise.all(planes.map((_, r) => run('round-0', r, inputOf(r, floats, 0))));
    await Promise.all(planes.map((_, r) => run('in-order', r, inOrder[r])));
    const opened = planes.map((p) => p.connectionsOpened);

    const early = planes.map((_, m) => inputOf(m, floats, 1));
    const late = [run('early', 1, early[1]), run('early', 2, early[2])];
    // Both senders' parts of member 0's segment: a vector this small is one segment, owned by member 0
    // (segmentCount), so each part is the whole vector (half the bytes with fp16).
    const partBytes = (floats * 4) / (compression ? 2 : 1);
    await until(() => planes[0].earlyFrameBytes === 2 * partBytes, 'both parts held at member 0 before it starts');
    await Promise.all([run('early', 0, early[0]), ...late]);

    for (let m = 0; m < 3; m++) assert.deepEqual(Buffer.from(early[m].buffer), Buffer.from(inOrder[0].buffer), `member ${m}`);
    assert.equal(planes[0].earlyFrameBytes, 0, 'the early frames were handed over');
    assert.deepEqual(planes.map((p) => p.connectionsOpened), opened, 'no connection was opened again');
  }

  for (const compression of [undefined, { type: 'fp16', prescale: 1 } as AllreduceCompression]) {
    it(`keeps ${compression ? 'fp16' : 'float32'} parts that come before the reduction starts, and folds them to the same bytes as parts that come after`, () =>
      earlyThenInOrder(['m0', 'm1', 'm2'], () => ({}), compression));
  }

  it('keeps early parts that came over mutual TLS the same way', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-early-frames-'));
    try {
      const ids = ['worker-1', 'worker-2', 'worker-3'];
      const certs = await makeDevCertificates({ outDir: dir, workerIds: ids });
      await earlyThenInOrder(ids, (id) => ({ tls: loadTlsCredentials(certs.dir, { role: 'worker', name: id }) }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('against a hand-written sender', () => {
    let fake: TensorChannelServer | undefined;
    let fakeOut: TensorChannel | undefined;
    afterEach(async () => {
      await fakeOut?.close();
      await fake?.close();
    });

    // So few floats are one segment (segmentCount), owned by rank 0: the fake sends its part and gets the sum.
    const floats = 4;
    const frame = (phase: string, segment: number, key: string, n = floats) => [{
      name: `${phase} segment ${segment}/1 of '${key}' (${floats} floats, 2 members)`, dtype: 'float32' as const, shape: [n], data: new Float32Array(n).fill(1),
    }];

    /** A real member (rank 0) that ran reduction 'k1' with the fake (rank 1); the fake's channel that the real one receives on. */
    async function afterOneReduction(): Promise<{ real: DataPlane; toReal: TensorChannel; refused: string[]; members: AllreduceMember[] }> {
      const refused: string[] = [];
      const real = await DataPlane.listen({ onRefused: (why) => refused.push(why) });
      planes = [real];
      fake = await startTensorChannelServer();
      const members: AllreduceMember[] = [{ id: 'real', address: real.address }, { id: 'fake', address: `127.0.0.1:${fake.port}` }];
      const result = real.allreduce({ key: 'k1', members, rank: 0, timeoutMs: 10_000 }, new Float32Array(floats));
      const toReal = await fake.accept();
      assert.equal((await toReal.receive()).meta.type, 'allreduce-hello');
      assert.equal((await toReal.receive()).meta.type, 'allreduce-ready');
      fakeOut = await connectTensorChannel('127.0.0.1', Number(real.address.split(':')[1]));
      await fakeOut.send([], { type: 'allreduce-hello', from: 'fake', address: members[1].address, to: 'real' });
      await toReal.send(frame('reduce-scatter', 0, 'k1'), { key: 'k1' });
      await result;
      return { real, toReal, refused, members };
    }

    /** Resolves once the real member closed `toReal`. */
    async function closedByReal(toReal: TensorChannel): Promise<void> {
      await assert.rejects(toReal.receive(), StreamClosedError);
    }

    it('refuses a frame for a reduction that already ended here, closing the connection', async () => {
      const { real, toReal, refused } = await afterOneReduction();
      await toReal.send(frame('reduce-scatter', 0, 'k1'), { key: 'k1' });
      await closedByReal(toReal);
      assert.deepEqual(refused, [`data plane: refused expected no more frames for reduction 'k1', which already ended here; ` +
        `got 'reduce-scatter segment 0/1 of 'k1' (4 floats, 2 members)' from 'fake'`]);
      assert.equal(real.earlyFrameBytes, 0);
    });

    it(`holds frames for at most ${MAX_EARLY_KEYS} reductions that have not started, and refuses a frame for another`, async () => {
      const { real, toReal, refused } = await afterOneReduction();
      for (let k = 2; k < 2 + MAX_EARLY_KEYS; k++) await toReal.send(frame('reduce-scatter', 0, `k${k}`), { key: `k${k}` });
      await until(() => real.earlyFrameBytes === MAX_EARLY_KEYS * floats * 4, 'the frames held');
      const extra = `k${2 + MAX_EARLY_KEYS}`;
      await toReal.send(frame('reduce-scatter', 0, extra), { key: extra });
      await closedByReal(toReal);
      assert.equal(refused.length, 1, refused.join(' | '));
      assert.match(refused[0], new RegExp(`expected frames for at most ${MAX_EARLY_KEYS} reductions that have not started here \\('k2', 'k3'\\), ` +
        `got .* from 'fake' for another, '${extra}'`));
      assert.equal(real.earlyFrameBytes, 0, 'the held frames went with their connection');
    });

    it('refuses an early frame beyond the bytes one reduction may hold, before reading its data', async () => {
      const { real, toReal, refused } = await afterOneReduction();
      const n = EARLY_FLOOR_BYTES / 4 + 1; // the last input was 16 bytes: the floor is the bound
      await toReal.send(frame('reduce-scatter', 0, 'k2', n), { key: 'k2' }).catch(() => undefined);
      await closedByReal(toReal);
      assert.equal(refused.length, 1, refused.join(' | '));
      assert.match(refused[0], new RegExp(`expected at most ${EARLY_FLOOR_BYTES} bytes of frames for reduction 'k2' before it starts here .* ` +
        `'fake' sent .*, ${EARLY_FLOOR_BYTES + 4} bytes in all`));
      assert.equal(real.earlyFrameBytes, 0);
    });

    it('drops frames held for a reduction when another one starts here instead', async () => {
      const { real, toReal, refused, members } = await afterOneReduction();
      await toReal.send(frame('reduce-scatter', 0, 'k2'), { key: 'k2' });
      await until(() => real.earlyFrameBytes === floats * 4, 'the frame held');
      const k3 = real.allreduce({ key: 'k3', members, rank: 0, timeoutMs: 300 }, new Float32Array(floats));
      k3.catch(() => undefined);
      await closedByReal(toReal);
      assert.deepEqual(refused, [`data plane: refused frames from 'fake' for a reduction that did not start here before 'k3' did: dropped`]);
      assert.equal(real.earlyFrameBytes, 0);
      await assert.rejects(k3, /'k3'/); // the fake never sends it anything
    });
  });
});
