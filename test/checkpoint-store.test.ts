import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import {
  type CheckpointState,
  type JsonValue,
  type NamedTensor,
  jobSpecHash,
  readCheckpoint,
} from '../coordinator/checkpoint-format';
import { CheckpointStore, latestCheckpoint } from '../coordinator/checkpoint-store';
import { EpochLedger } from '../coordinator/epoch-ledger';
import { CheckpointError, CorruptCheckpointError } from '../coordinator/errors';

const SAMPLES = 40;

function stateAt(globalStep: number, epoch = 0, step = globalStep): CheckpointState {
  return {
    epoch,
    step,
    globalStep,
    configVersion: 2,
    weightsVersion: globalStep + 1,
    schedule: { plateau: { best: 0.42, wait: 1, scale: 0.5 }, nested: [1, 'two', null] },
    optimizer: { type: 'adam', steps: { 'dense/kernel': globalStep } },
    ledger: new EpochLedger(SAMPLES, { epoch, step }).toJSON(),
    jobSpecHash: 'abc123',
  };
}

function tensorsAt(globalStep: number): NamedTensor[] {
  const kernel = new Float32Array(12).map((_, i) => i * 0.25 - globalStep);
  const odd = Float32Array.from([NaN, -0, Infinity, 1e-45, 3.4028234663852886e38]);
  return [
    { name: 'dense/kernel', shape: [3, 4], values: kernel },
    { name: 'dense/kernel.m', shape: [3, 4], values: kernel.map((v) => v / 2) },
    { name: 'edge', shape: [5], values: odd },
    { name: 'empty', shape: [0, 7], values: new Float32Array(0) },
  ];
}

function bits(values: Float32Array): number[] {
  return [...new Uint32Array(values.buffer, values.byteOffset, values.length)];
}

describe('checkpoint store', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'shardwise-ckpt-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes a folder that reads back bit for bit, with raw little-endian float32 tensors', async () => {
    const store = new CheckpointStore(dir);
    const folder = await store.write(stateAt(7), tensorsAt(7));
    assert.equal(basename(folder), 'step-0000000007');
    assert.deepEqual(readdirSync(folder).sort(), ['state.json', 'tensors.bin', 'tensors.json']);
    const raw = readFileSync(join(folder, 'tensors.bin'));
    assert.equal(raw.length, (12 + 12 + 5) * 4);
    assert.equal(raw.readFloatLE(4), 0.25 - 7, 'second float of dense/kernel, read as little-endian');

    const read = await readCheckpoint(folder);
    assert.deepEqual(read.state, stateAt(7));
    const written = tensorsAt(7);
    assert.deepEqual(read.tensors.map((t) => [t.name, t.shape]), written.map((t) => [t.name, t.shape]));
    for (let k = 0; k < written.length; k++) assert.deepEqual(bits(read.tensors[k].values), bits(written[k].values));
  });

  it('finds the newest checkpoint and keeps only the last K', async () => {
    const store = new CheckpointStore(dir, { keep: 2 });
    for (const g of [1, 2, 3, 10]) await store.write(stateAt(g), tensorsAt(g));
    assert.deepEqual((await store.list()).map((p) => basename(p)), ['step-0000000010', 'step-0000000003']);
    const { checkpoint, skipped } = await store.latest();
    assert.equal(checkpoint?.state.globalStep, 10);
    assert.deepEqual(skipped, []);
  });

  it('treats a missing folder as an empty store', async () => {
    const result = await latestCheckpoint(join(dir, 'never-written'));
    assert.equal(result.checkpoint, undefined);
    assert.deepEqual(result.skipped, []);
  });

  // Each corruption is applied to the newest checkpoint; the previous one must be chosen instead.
  const corruptions: { what: string; file: string; message: RegExp; damage: (folder: string) => void }[] = [
    {
      what: 'a truncated tensors.bin',
      file: 'tensors.bin',
      message: /tensors\.bin: expected 116 bytes \(per tensors\.json\), file has 50 bytes/,
      damage: (f) => truncateSync(join(f, 'tensors.bin'), 50),
    },
    {
      what: 'a missing tensors.bin',
      file: 'tensors.bin',
      message: /tensors\.bin: file is missing/,
      damage: (f) => unlinkSync(join(f, 'tensors.bin')),
    },
    {
      what: 'a damaged byte in tensors.bin',
      file: 'tensors.bin',
      message: /tensors\.bin: expected SHA-256 [0-9a-f]{64}, file has [0-9a-f]{64}/,
      damage: (f) => {
        const bytes = readFileSync(join(f, 'tensors.bin'));
        bytes[9] ^= 0x40;
        writeFileSync(join(f, 'tensors.bin'), bytes);
      },
    },
    {
      what: 'a truncated state.json',
      file: 'state.json',
      message: /state\.json: invalid JSON/,
      damage: (f) => truncateSync(join(f, 'state.json'), Math.floor(statSync(join(f, 'state.json')).size / 2)),
    },
    {
      what: 'a state.json with a bad field',
      file: 'state.json',
      message: /state\.json: expected epoch to be an integer >= 0, got "zero"/,
      damage: (f) => {
        const state = JSON.parse(readFileSync(join(f, 'state.json'), 'utf8'));
        writeFileSync(join(f, 'state.json'), JSON.stringify({ ...state, epoch: 'zero' }));
      },
    },
    {
      what: 'a missing manifest',
      file: 'tensors.json',
      message: /tensors\.json: file is missing/,
      damage: (f) => unlinkSync(join(f, 'tensors.json')),
    },
    {
      what: 'a manifest whose shapes do not fit the data',
      file: 'tensors.json',
      message: /tensors\.json: tensor #0 "dense\/kernel"/,
      damage: (f) => {
        const manifest = JSON.parse(readFileSync(join(f, 'tensors.json'), 'utf8'));
        manifest.tensors[0].shape = [4, 4];
        writeFileSync(join(f, 'tensors.json'), JSON.stringify(manifest));
      },
    },
  ];
  for (const c of corruptions) {
    it(`skips ${c.what}, naming the file, in favour of the previous checkpoint`, async () => {
      const store = new CheckpointStore(dir);
      await store.write(stateAt(1), tensorsAt(1));
      const newest = await store.write(stateAt(2), tensorsAt(2));
      c.damage(newest);
      await assert.rejects(
        readCheckpoint(newest),
        (e: unknown) => e instanceof CorruptCheckpointError && e.file === c.file,
      );
      const { checkpoint, skipped } = await store.latest();
      assert.equal(checkpoint?.state.globalStep, 1);
      assert.deepEqual(bits(checkpoint!.tensors[0].values), bits(tensorsAt(1)[0].values));
      assert.equal(skipped.length, 1);
      assert.equal(skipped[0].path, newest);
      assert.equal(skipped[0].file, c.file);
      assert.match(skipped[0].message, c.message);
      assert.match(skipped[0].message, /step-0000000002/);
    });
  }

  it('reports every corrupt checkpoint and none found when all are damaged', async () => {
    const store = new CheckpointStore(dir);
    for (const g of [1, 2]) unlinkSync(join(await store.write(stateAt(g), tensorsAt(g)), 'tensors.bin'));
    const { checkpoint, skipped } = await store.latest();
    assert.equal(checkpoint, undefined);
    assert.deepEqual(skipped.map((e) => basename(e.path)), ['step-0000000002', 'step-0000000001']);
  });

  it('ignores the leftovers of a crashed write and clears them on the next write', async () => {
    const store = new CheckpointStore(dir);
    await store.write(stateAt(1), tensorsAt(1));
    const stray = join(dir, '.tmp-step-0000000002-999-0');
    mkdirSync(stray);
    writeFileSync(join(stray, 'tensors.bin'), Buffer.alloc(10)); // died before writing the JSON files
    assert.equal((await store.latest()).checkpoint?.state.globalStep, 1);
    await store.write(stateAt(2), tensorsAt(2));
    assert.equal(existsSync(stray), false);
    assert.deepEqual(readdirSync(dir).sort(), ['step-0000000001', 'step-0000000002']);
  });

  it('replaces a corrupt checkpoint of the same step when training passes it again', async () => {
    const store = new CheckpointStore(dir);
    await store.write(stateAt(1), tensorsAt(1));
    truncateSync(join(await store.write(stateAt(2), tensorsAt(2)), 'tensors.bin'), 3);
    assert.equal((await store.latest()).checkpoint?.state.globalStep, 1);
    await store.write(stateAt(2), tensorsAt(2));
    const { checkpoint, skipped } = await store.latest();
    assert.equal(checkpoint?.state.globalStep, 2);
    assert.deepEqual(skipped, []);
    assert.deepEqual(readdirSync(dir).sort(), ['step-0000000001', 'step-0000000002']);
  });

  it('drops checkpoints of an abandoned later timeline so they cannot outrank or evict the new one', async () => {
    const store = new CheckpointStore(dir, { keep: 1 });
    await store.write(stateAt(1), tensorsAt(1));
    const keepAll = new CheckpointStore(dir, { keep: 5 });
    unlinkSync(join(await keepAll.write(stateAt(3), tensorsAt(3)), 'state.json'));
    assert.equal((await store.latest()).checkpoint?.state.globalStep, 1, 'resume from step 1');
    await store.write(stateAt(2), tensorsAt(2));
    assert.deepEqual(readdirSync(dir), ['step-0000000002']);
  });

  it('refuses bad input with the rule that was broken', async () => {
    const store = new CheckpointStore(dir);
    await assert.rejects(
      store.write({ ...stateAt(5), step: 4 }, []),
      (e: unknown) =>
        e instanceof CheckpointError &&
        /expected the ledger at epoch 0 step 4, found it at epoch 0 step 5/.test(e.message),
    );
    await assert.rejects(
      store.write(stateAt(5), [{ name: 'w', shape: [2, 3], values: new Float32Array(5) }]),
      /tensor w: expected shape \[2,3\] to hold 5 values, it holds 6/,
    );
    await assert.rejects(
      store.write({ ...stateAt(5), schedule: { plateau: { best: Infinity } } }, []),
      /schedule\.plateau\.best: expected a finite number \(JSON has no Infinity\)/,
    );
    await assert.rejects(
      store.write({ ...stateAt(5), optimizer: { m: new Float32Array(2) } as unknown as JsonValue }, []),
      /optimizer\.m: expected plain JSON, got a Float32Array \(arrays go in tensors\)/,
    );
    const t = { name: 'w', shape: [1], values: new Float32Array(1) };
    await assert.rejects(store.write(stateAt(5), [t, t]), /unique non-empty tensor names, got "w" again/);
    assert.throws(() => new CheckpointStore(dir, { keep: 0 }), /keep >= 1, got 0/);
    assert.deepEqual(readdirSync(dir), [], 'nothing was written');
  });

  it('hashes a job spec independently of key order', () => {
    const a = jobSpecHash({ seed: 1, training: { epochs: 3, batchSize: 32 }, x: undefined });
    const b = jobSpecHash({ training: { batchSize: 32, epochs: 3 }, seed: 1 });
    assert.equal(a, b);
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.notEqual(jobSpecHash({ training: { batchSize: 64, epochs: 3 }, seed: 1 }), a);
  });
});
