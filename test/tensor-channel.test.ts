import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import {
  MessageTooLargeError,
  NonFiniteValueError,
  StreamClosedError,
  TensorChannel,
  TensorChannelServer,
  TensorCodecError,
  WireTensor,
  connectTensorChannel,
  FRAME_MAGIC,
  FRAME_PREFIX_BYTES,
  encodeFrameHeader,
  startTensorChannelServer,
} from '../common/wire';
import { bitsEqual, trickyFloats } from './support/floats';
import { pollUntil } from './support/deadline';


/** Rejects after `ms`, so a test that would hang fails with a message instead. */
function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)));
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

const kernel: WireTensor = { name: 'conv1/kernel', dtype: 'float32', shape: [3, 3, 3, 32], data: trickyFloats(864, 1) };
// Bigger than a socket buffer, so the sender waits for 'drain' and the receiver sees many reads.
const big: WireTensor = { name: 'dense/kernel', dtype: 'float32', shape: [1024, 1024], data: trickyFloats(1024 * 1024, 2) };
const steps: WireTensor = { name: 'step', dtype: 'int32', shape: [], data: new Int32Array([7]) };
const manifest = [kernel, big].map(({ name, dtype, shape }) => ({ name, dtype, shape }));

describe('tensor-channel', () => {
  let server: TensorChannelServer;
  let client: TensorChannel;
  let peer: TensorChannel;

  async function connect(options = {}): Promise<void> {
    server = await startTensorChannelServer('127.0.0.1', 0, options);
    [client, peer] = await Promise.all([connectTensorChannel('127.0.0.1', server.port, options), server.accept()]);
  }

  afterEach(async () => {
    await client?.close();
    await server?.close();
  });

  it('round-trips tensors bit-exactly, into preallocated arrays, several frames in a row', async () => {
    await connect();
    const into = new Float32Array(big.data.length);
    for (let round = 0; round < 3; round++) {
      const [, frame] = await Promise.all([
        client.send([kernel, big, steps], { step: round, note: 'x' }),
        peer.receive({ into: (spec) => (spec.name === big.name ? into : undefined) }),
      ]);
      assert.deepEqual(frame.meta, { step: round, note: 'x' });
      assert.deepEqual([...frame.tensors.keys()], ['conv1/kernel', 'dense/kernel', 'step']);
      assert.equal(frame.tensors.get(big.name)?.data, into, 'the big tensor is read into the given array');
      assert.deepEqual(frame.tensors.get(kernel.name)?.shape, [3, 3, 3, 32]);
      for (const t of [kernel, big, steps]) assert.ok(bitsEqual(frame.tensors.get(t.name)?.data as ArrayBufferView, t.data), t.name);
    }
    // The other direction over the same connection: the connecting side reads straight into the arrays.
    const intoBack = new Float32Array(big.data.length);
    for (let round = 0; round < 3; round++) {
      const [, back] = await Promise.all([
        peer.send([kernel, big, steps], { round }),
        client.receive({ expected: [...manifest, steps], into: (spec) => (spec.name === big.name ? intoBack : undefined) }),
      ]);
      assert.equal(back.meta.round, round);
      assert.equal(back.tensors.get(big.name)?.data, intoBack);
      for (const t of [kernel, big, steps]) assert.ok(bitsEqual(back.tensors.get(t.name)?.data as ArrayBufferView, t.data), t.name);
    }
  });

  it('the server forgets a channel once its socket closed', async () => {
    await connect();
    const more = await Promise.all([0, 1, 2].map(async () => {
      const [c] = await Promise.all([connectTensorChannel('127.0.0.1', server.port), server.accept()]);
      return c;
    }));
    assert.equal(server.openChannels, 4);
    await Promise.all(more.map((c) => c.close()));
    await pollUntil(() => (server.openChannels === 1 ? true : undefined), { timeoutMs: 5000, intervalMs: 5, what: 'the closed channels to be forgotten' });
  });

  it('refuses a shape the manifest does not list, naming the tensor, and closes', async () => {
    await connect();
    const wrong: WireTensor = { ...kernel, shape: [864] };
    const got = peer.receive({ expected: manifest });
    void client.send([wrong, big]).catch(() => undefined);
    await assert.rejects(got, (err: unknown) => err instanceof TensorCodecError && err.tensorName === 'conv1/kernel' &&
      /expected shape \[3,3,3,32\] float32, frame has shape \[864\] float32/.test(err.message));
    await assert.rejects(peer.receive(), TensorCodecError, 'the channel stays failed');
  });

  it('refuses an unexpected name and a missing tensor', async () => {
    await connect();
    const stray: WireTensor = { ...kernel, name: 'stray' };
    const got = peer.receive({ expected: manifest });
    void client.send([stray]).catch(() => undefined);
    await assert.rejects(got, (err: unknown) => err instanceof TensorCodecError && err.tensorName === 'stray' && /does not list/.test(err.message));
    await client.close();
    await server.close();

    await connect();
    const short = peer.receive({ expected: manifest });
    void client.send([kernel]).catch(() => undefined);
    await assert.rejects(short, (err: unknown) => err instanceof TensorCodecError && err.tensorName === 'dense/kernel' && /lacks 1/.test(err.message));
  });

  it('refuses a frame over the size limit before reading its payload', async () => {
    await connect({ maxTotalBytes: 8 * 1024 * 1024 });
    // The sender checks its own limit too, so write the oversize header by hand, with no payload at all:
    // a receiver that waited for the payload would hang here.
    const socket = net.connect({ host: '127.0.0.1', port: server.port });
    await once(socket, 'connect');
    const liar = await server.accept();
    const json = JSON.stringify({ meta: {}, tensors: [{ name: kernel.name, dtype: 'float32', shape: kernel.shape, byteLength: 3456 },
      { name: 'huge', dtype: 'float32', shape: [3 * 1024 * 1024], byteLength: 12 * 1024 * 1024 }] });
    const prefix = Buffer.alloc(FRAME_PREFIX_BYTES);
    prefix.writeUInt32LE(FRAME_MAGIC, 0);
    prefix.writeUInt32LE(Buffer.byteLength(json), 4);
    socket.write(Buffer.concat([prefix, Buffer.from(json)]));
    await assert.rejects(within(5000, liar.receive()), (err: unknown) => err instanceof MessageTooLargeError &&
      /'huge'/.test(err.message) && err.limitBytes === 8 * 1024 * 1024);
    await once(socket, 'close');
    // And a sender refuses to send what the limit forbids.
    await assert.rejects(client.send([big, { ...big, name: 'b2' }, { ...big, name: 'b3' }]), (err: unknown) =>
      err instanceof MessageTooLargeError && /'b3'/.test(err.message) && err.sizeBytes === 12 * 1024 * 1024);
  });

  it('refuses NaN and Infinity, naming the tensor and the element', async () => {
    await connect();
    const bad = Float32Array.from(big.data);
    bad[123_457] = NaN;
    const got = peer.receive({ expected: manifest });
    void client.send([kernel, { ...big, data: bad }]).catch(() => undefined);
    await assert.rejects(got, (err: unknown) => err instanceof NonFiniteValueError && err.tensorName === 'dense/kernel' && err.index === 123_457);
  });

  it('fails clearly, without hanging, when the peer closes mid-frame', async () => {
    await connect();
    const socket = net.connect({ host: '127.0.0.1', port: server.port });
    await once(socket, 'connect');
    const half = await server.accept();
    const header = encodeFrameHeader([big]);
    socket.end(Buffer.concat([header, Buffer.from(big.data.buffer, 0, 1000)]));
    await assert.rejects(within(5000, half.receive({ expected: [manifest[1]] })), (err: unknown) =>
      err instanceof StreamClosedError && /closed.*mid-frame \(1000 of 4194304 bytes of tensor 'dense\/kernel'\)/.test(err.message));
  });

  it('gives up at the receive deadline when the peer goes silent', async () => {
    await connect();
    await assert.rejects(within(5000, peer.receive({ timeoutMs: 50 })), (err: unknown) =>
      err instanceof StreamClosedError && /no whole frame .* within 50 ms/.test(err.message));
    await assert.rejects(within(5000, client.receive()), StreamClosedError, 'the other side sees the close');
  });
});
