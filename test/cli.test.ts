import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as net from 'node:net';
import { join, resolve } from 'node:path';

const SHARDWISE = resolve(__dirname, '../bin/shardwise');

interface Outcome {
  code: number | null;
  stderr: string;
}

function shardwise(args: string[]): Promise<Outcome> {
  return new Promise((done) => {
    execFile(SHARDWISE, args, { env: { ...process.env, SHARDWISE_DEBUG: '' } }, (err, _stdout, stderr) => {
      done({ code: err ? (err as NodeJS.ErrnoException & { code?: number }).code as unknown as number : 0, stderr });
    });
  });
}

/** A bad input must end with exit status 2 and one message naming the problem, never a bare stack trace. */
function assertClearRefusal(outcome: Outcome, expected: RegExp): void {
  assert.equal(outcome.code, 2, `expected exit status 2, got ${outcome.code}; stderr:\n${outcome.stderr}`);
  assert.match(outcome.stderr, expected);
  assert.doesNotMatch(outcome.stderr, /^\s+at .+\(.+:\d+:\d+\)$/m, 'stderr shows a stack trace');
}

describe('shardwise CLI: bad input is refused with a clear message', function () {
  const dir = mkdtempSync(join(tmpdir(), 'shardwise-cli-'));
  const job = (extra: string): string => {
    const file = join(dir, `job-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      file,
      `model: {architecture: small_cnn}\ntraining: {epochs: 1, batchSize: 8}\noptimizer: {learningRate: 0.01}\n` +
        `output: {runsDir: ${JSON.stringify(join(dir, 'runs'))}}\n${extra}`,
    );
    return file;
  };

  it('a negative learning rate', async () => {
    const outcome = await shardwise(['train', '--local', '--job', job(''), '--set', 'optimizer.learningRate=-0.5']);
    assertClearRefusal(outcome, /optimizer\.learningRate: .*>0/);
  });

  it('an unknown key in the job spec', async () => {
    assertClearRefusal(await shardwise(['train', '--local', '--job', job('freeze: {backbone_epochs: 2}\n')]), /freeze: unknown key 'backbone_epochs'/);
  });

  it('an unknown model name', async () => {
    const outcome = await shardwise(['train', '--local', '--job', job(''), '--set', 'model.architecture=resnet1000']);
    assertClearRefusal(outcome, /model\.architecture: .*"resnet18"/);
  });

  it('a thread count that is not a positive integer, on train and worker alike', async () => {
    assertClearRefusal(await shardwise(['train', '--local', '--job', job(''), '--threads', '0']), /--threads: expected an integer >= 1, got '0'/);
    assertClearRefusal(await shardwise(['worker', '--coordinator', '127.0.0.1:1', '--threads', '1.5']), /--threads: expected an integer >= 1, got '1.5'/);
  });

  it('an OMP_NUM_THREADS that is not a positive integer', async () => {
    const outcome = await new Promise<Outcome>((done) => {
      execFile(SHARDWISE, ['train', '--local', '--job', job('')], { env: { ...process.env, SHARDWISE_DEBUG: '', OMP_NUM_THREADS: 'all' } },
        (err, _stdout, stderr) => done({ code: err ? (err as unknown as { code: number }).code : 0, stderr }));
    });
    assertClearRefusal(outcome, /OMP_NUM_THREADS: expected an integer >= 1, got 'all'/);
  });

  it('a corrupt data file', async () => {
    const data = join(dir, 'corrupt-cifar');
    mkdirSync(data);
    writeFileSync(join(data, 'data_batch_1.bin'), Buffer.alloc(1000));
    const outcome = await shardwise(['train', '--local', '--job', job(''), '--data', data]);
    assertClearRefusal(outcome, /data_batch_1\.bin.*expected 3073-byte records, file has 1000 bytes/);
  });

  it('a truncated model.json', async () => {
    const model = join(dir, 'truncated-model');
    mkdirSync(model);
    writeFileSync(join(model, 'model.json'), '{"format": "layers-model", "modelTopology": {"class_name": "Mod');
    const outcome = await shardwise([
      'train', '--local', '--job', job(''), '--data', join(dir, 'unused'),
      '--set', 'model.architecture=layers', '--set', `model.path=${join(model, 'model.json')}`,
    ]);
    assertClearRefusal(outcome, /model\.json/);
  });

  it('a wrong-type value, named with what was expected and what was given', async () => {
    const outcome = await shardwise(['train', '--local', '--job', job(''), '--set', 'training.epochs=three']);
    assertClearRefusal(outcome, /training\.epochs: expected a number, got "three"/);
  });

  it('a batch size the micro-batch size does not divide', async () => {
    const outcome = await shardwise(['train', '--local', '--job', job(''), '--set', 'training.batchSize=30', '--set', 'training.microBatchSize=8']);
    assertClearRefusal(outcome, /training\.batchSize: 30 is not a multiple of training\.microBatchSize 8/);
  });

  it('a cluster of zero workers, or of more than the job allows', async () => {
    assertClearRefusal(await shardwise(['cluster', '--job', job(''), '--workers', '0']), /--workers.*expected a worker count from 1 to 64, got '0'/);
    const outcome = await shardwise(['cluster', '--job', job(''), '--workers', '20', '--set', 'distributed.maxWorkers=16']);
    assertClearRefusal(outcome, /workers: expected an integer from 1 to 16 \(the job's distributed\.maxWorkers\), got 20/);
  });

  it('a --run-dir whose parent does not exist either (a typo, not a new run)', async () => {
    const outcome = await shardwise(['coordinator', '--job', job(''), '--run-dir', join(dir, 'no', 'such', 'run')]);
    assertClearRefusal(outcome, /runDir: .*no\/such\/run does not exist and neither does its parent/);
  });

  it('a --data-port already in use, naming the flag', async () => {
    const taken = net.createServer();
    await new Promise<void>((ready) => taken.listen(0, '127.0.0.1', ready));
    const { port } = taken.address() as net.AddressInfo;
    try {
      const outcome = await shardwise(['worker', '--coordinator', '127.0.0.1:1', '--data-port', String(port)]);
      assertClearRefusal(outcome, new RegExp(`data plane: cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use .*choose another --data-port`));
    } finally {
      taken.close();
    }
  });
});
