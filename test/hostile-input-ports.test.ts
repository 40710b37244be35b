import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import { GrpcStatus, initBackend, parseJobSpec, readMetrics, RpcError, serverStreamCall, unaryCall } from '../common';
import { type RunningCoordinator, startCoordinator } from '../coordinator';
import { type GetWeightsResponse, type HeartbeatResponse, PROTOCOL_VERSION, RegisterRequest, type ScaleResponse, StepKind } from '../proto';
import { FakeWorker, writeTinyCifar } from './coordinator-fake-worker';
import { withDeadline } from './support/deadline';

// Hostile input on the coordinator's ports, against one running job: malformed, truncated and oversized
// protobuf, calls from workers that do not exist, forged identities, raw bytes on the gRPC, data-plane and
// metrics ports. One row per distinct case. Each asserts the refusal (status and a message naming the
// problem, or the port closing on the sender), that the job's state did not move (steps, samples counted,
// active workers, failures, exactly-once violations), and that the job goes on: the honest worker completes
// the next step. At the end every epoch report of the run says exactly-once.

const CALL_DEADLINE_MS = 10_000;
const SERVICE = '/shardwise.v1.Coordinator';
/** Metrics that must not move while a hostile input is refused. */
const STATE_METRICS = [
  'shardwise_active_workers', 'shardwise_steps_total', 'shardwise_samples_total', 'shardwise_worker_failures_total',
  'shardwise_exactly_once_violations_total', 'shardwise_replica_hash_mismatches_total',
] as const;

interface Ports {
  coordinator: RunningCoordinator;
  /** `host:port` of the coordinator's allreduce data plane. */
  dataPlane: string;
}

interface PortCase {
  name: string;
  /** Sends the hostile input and asserts how it was refused. */
  run: (p: Ports) => Promise<void>;
}

/** A call with raw request bytes, as a client with a broken or hostile encoder would make it. */
function rawUnary(address: string, method: string, request: Buffer): Promise<ServiceError> {
  const client = new Client(address, credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(`${SERVICE}/${method}`, (b: Buffer) => b, (b: Buffer) => b, request, { deadline: Date.now() + CALL_DEADLINE_MS },
      (err) => {
        client.close();
        if (err) resolve(err);
        else reject(new Error(`${method} with hostile bytes was answered as if valid`));
      });
  });
}

/** Awaits a call that must be refused with `code` and details matching `pattern`. */
async function refused(call: Promise<unknown>, code: number, pattern: RegExp): Promise<void> {
  const error = await call.then(() => undefined, (err: unknown) => err);
  assert.ok(error instanceof RpcError, `expected a refusal, got ${error === undefined ? 'success' : String(error)}`);
  assert.equal(error.codeName, GrpcStatus[code], `status of: ${error.details}`);
  assert.match(error.details, pattern);
}

function assertRawRefusal(err: ServiceError, code: number, pattern: RegExp): void {
  assert.equal(err.code, code, `status of: ${err.details}`);
  assert.match(err.details, pattern);
}

/**
 * Writes `bytes` to `address` and resolves with what came back once the server closed the connection (the
 * refusal). Fails when the server keeps the socket open past the deadline: a hostile peer must not be able to
 * hold connections open by sending junk.
 */
function sendRaw(address: string, bytes: Buffer | string): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return withDeadline(new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, host, () => socket.end(bytes));
    let reply = '';
    socket.on('data', (d) => (reply += d.toString('latin1')));
    socket.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? resolve(reply) : reject(err)));
    socket.on('close', () => resolve(reply));
  }), CALL_DEADLINE_MS, `${address} to close the connection of a peer that sent junk`);
}

function randomBytes(n: number, seed: number): Buffer {
  let x = seed;
  return Buffer.from(Array.from({ length: n }, () => (x = (x * 1103515245 + 12345) % 2 ** 31) & 0xff));
}

function registerRequest(workerId: string): Buffer {
  return Buffer.from(RegisterRequest.encode({
    capabilities: {
      workerId, shardwiseVersion: '', protocolVersion: PROTOCOL_VERSION, backend: 'test', architecture: '', modelFingerprint: '',
      maxMessageBytes: 0, pid: 1, hostname: 'hostile', dataAddress: '',
    },
  } as RegisterRequest).finish());
}

/** Clients of the current case, closed after it. */
const strangers: FakeWorker[] = [];

/** A worker client that never registered, for calls naming workers the job does not know. */
function stranger(p: Ports, id: string): FakeWorker {
  const w = new FakeWorker(p.coordinator.grpcAddress);
  w.id = id;
  strangers.push(w);
  return w;
}

const CASES: PortCase[] = [
  {
    name: 'random bytes as a Register message',
    run: async (p) => assertRawRefusal(await rawUnary(p.coordinator.grpcAddress, 'Register', randomBytes(64, 1)), GrpcStatus.INTERNAL, /deserializ/i),
  },
  {
    name: 'a Register message cut off in the middle',
    run: async (p) => {
      const whole = registerRequest('cut-off');
      assertRawRefusal(await rawUnary(p.coordinator.grpcAddress, 'Register', whole.subarray(0, Math.floor(whole.length / 2))), GrpcStatus.INTERNAL, /deserializ/i);
    },
  },
  {
    name: 'a length prefix claiming 2^31 bytes inside a message',
    run: async (p) => assertRawRefusal(await rawUnary(p.coordinator.grpcAddress, 'Register', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x07, 0x01])), GrpcStatus.INTERNAL, /deserializ/i),
  },
  {
    name: 'a message over the server limit (65 MiB)',
    run: async (p) => assertRawRefusal(await rawUnary(p.coordinator.grpcAddress, 'Register', Buffer.alloc(65 * 2 ** 20, 0x0a)), GrpcStatus.RESOURCE_EXHAUSTED, /larger than max/i),
  },
  {
    name: 'a method the service does not have',
    run: async (p) => assertRawRefusal(await rawUnary(p.coordinator.grpcAddress, 'DropAllWorkers', Buffer.alloc(0)), GrpcStatus.UNIMPLEMENTED, /DropAllWorkers/),
  },
  {
    name: 'a heartbeat from a worker that never registered',
    run: (p) => refused(stranger(p, 'ghost').heartbeat(), GrpcStatus.NOT_FOUND, /worker 'ghost' is not registered/),
  },
  {
    name: 'a step pulled by a worker that never registered',
    run: (p) => refused(stranger(p, 'ghost').pull(100), GrpcStatus.NOT_FOUND, /worker 'ghost' is not registered/),
  },
  {
    name: 'weights asked for by a worker that never registered',
    run: async (p) => {
      const { client } = stranger(p, 'ghost');
      const stream = serverStreamCall<GetWeightsResponse>('GetWeights', { deadlineMs: CALL_DEADLINE_MS }, (md, o) =>
        client.getWeights({ workerId: 'ghost', includeOptimizerState: true, modelFingerprint: 'sha256:00' }, md, o));
      await refused((async () => {
        for await (const msg of stream) assert.fail(`a tensor reached an unregistered caller: ${msg.payload?.$case}`);
      })(), GrpcStatus.NOT_FOUND, /worker 'ghost' is not registered/);
    },
  },
  {
    name: 'a leave for a worker that never registered (answered, nothing changes)',
    run: async (p) => assert.equal((await stranger(p, 'ghost').leave()).lastCountedStep, 0),
  },
  {
    name: 'an evaluation result from a worker that never registered',
    run: (p) => refused(stranger(p, 'ghost').submitEval({
      workerId: 'ghost', globalStep: 0, epoch: 0, sampleCount: 4, lossSum: 0, correctCount: 4, confusionMatrix: [], correctTop5: 4, microBatchIds: [0],
    }), GrpcStatus.NOT_FOUND, /worker 'ghost' is not registered/),
  },
  {
    name: "a heartbeat under the live worker's id from a client that never registered it",
    run: async (p) => {
      // Without an identity (the mTLS issue) an id is only a name: what must hold is that a heartbeat, which
      // carries no result, cannot change what the job counts.
      const forged = stranger(p, 'honest');
      const answer = await unaryCall<HeartbeatResponse>('Heartbeat', { deadlineMs: CALL_DEADLINE_MS }, (md, o, cb) =>
        forged.client.heartbeat({ workerId: 'honest', incarnation: 0, state: 2, lastCompletedStep: 1_000_000, configVersion: 999 }, md, o, cb));
      assert.equal(answer.drain, false, 'a forged heartbeat must not drain the worker');
    },
  },
  {
    name: 'a scale request to 0 workers',
    run: async (p) => {
      const client = stranger(p, 'operator').client;
      await refused(unaryCall<ScaleResponse>('Scale', { deadlineMs: CALL_DEADLINE_MS }, (md, o, cb) => client.scale({ desiredWorkers: 0 }, md, o, cb)),
        GrpcStatus.INVALID_ARGUMENT, /desired.*workers.*0/i);
    },
  },
  {
    name: 'a scale request to 4 billion workers',
    run: async (p) => {
      const client = stranger(p, 'operator').client;
      await refused(unaryCall<ScaleResponse>('Scale', { deadlineMs: CALL_DEADLINE_MS }, (md, o, cb) => client.scale({ desiredWorkers: 2 ** 32 - 1 }, md, o, cb)),
        GrpcStatus.INVALID_ARGUMENT, /4294967295/);
    },
  },
  {
    name: 'random bytes on the gRPC port',
    run: async (p) => void (await sendRaw(p.coordinator.grpcAddress, randomBytes(4096, 2))),
  },
  {
    name: 'an HTTP/1.1 request on the gRPC port',
    run: async (p) => void (await sendRaw(p.coordinator.grpcAddress, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')),
  },
  {
    name: 'random bytes on the data-plane port',
    run: async (p) => void (await sendRaw(p.dataPlane, randomBytes(4096, 3))),
  },
  {
    name: 'a data-plane frame header announcing 4 GiB',
    run: async (p) => void (await sendRaw(p.dataPlane, Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), randomBytes(56, 4)]))),
  },
  {
    name: 'random bytes on the metrics port',
    run: async (p) => assert.match(await sendRaw(new URL(p.coordinator.metricsUrl).host, randomBytes(4096, 5)), /^HTTP\/1\.1 400 Bad Request/),
  },
  {
    name: 'a path traversal on the metrics port',
    run: async (p) => {
      const reply = await sendRaw(new URL(p.coordinator.metricsUrl).host, 'GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      assert.match(reply, /^HTTP\/1\.1 404 /);
      assert.doesNotMatch(reply, /root:/);
    },
  },
  {
    name: 'a 64 KiB header on the metrics port',
    run: async (p) => {
      const reply = await sendRaw(new URL(p.coordinator.metricsUrl).host, `GET /metrics HTTP/1.1\r\nHost: x\r\nX-Junk: ${'a'.repeat(65_536)}\r\n\r\n`);
      assert.match(reply, /^HTTP\/1\.1 431/, 'expected 431 Request Header Fields Too Large');
    },
  },
];

describe(`hostile input on the coordinator's ports: refused, the job undisturbed (${CASES.length} cases)`, function () {
  this.timeout(120_000);
  let dataDir: string;
  let runsDir: string;
  let ports: Ports;
  let honest: FakeWorker;
  let lastStep = -1;
  const logLines: string[] = [];

  async function snapshot(): Promise<Record<string, number>> {
    const text = await (await fetch(ports.coordinator.metricsUrl)).text();
    return Object.fromEntries(STATE_METRICS.map((name) => {
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      return [name, m ? Number(m[1]) : 0];
    }));
  }

  /** The honest worker completes the next training step (evaluating where an epoch ends): the job went on. */
  async function nextStep(): Promise<void> {
    await withDeadline((async () => {
      for (;;) {
        const { assignment } = await honest.pull(5000);
        if (assignment.kind === StepKind.EVAL) await honest.submitEval(honest.evaluate(assignment));
        if (assignment.kind !== StepKind.TRAIN) continue;
        assert.ok(assignment.globalStep > lastStep, `the next training step: got ${assignment.globalStep} after ${lastStep}`);
        await honest.train(assignment);
        lastStep = assignment.globalStep;
        return;
      }
    })(), 30_000, `the step after ${lastStep}`);
  }

  before(async () => {
    await initBackend({ prefer: 'wasm', log: () => undefined });
    dataDir = writeTinyCifar(256, 11);
    runsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardwise-hostile-ports-'));
    const spec = parseJobSpec(`
name: hostile
seed: 1
data: { dir: ${JSON.stringify(dataDir)}, valFraction: 0.25, augment: { rotationDeg: 0 } }
model: { architecture: small_cnn }
training: { epochs: 4, batchSize: 16, microBatchSize: 4, evalBatchSize: 16 }
optimizer: { learningRate: 0.01 }
output: { runsDir: ${JSON.stringify(runsDir)} }
distributed: { leaseMs: 60000, stepDeadlineMs: 60000, desiredWorkers: 1, maxWorkers: 4 }
`);
    const coordinator = await startCoordinator({ spec, log: (l) => logLines.push(l), stopGraceMs: 2000, drainGraceMs: 100, progressStream: fs.createWriteStream('/dev/null') });
    const dataPlane = /allreduce data plane on (\S+)/.exec(logLines.join('\n'))?.[1];
    assert.ok(dataPlane, `the coordinator did not announce its data plane:\n${logLines.join('\n')}`);
    ports = { coordinator, dataPlane };
    honest = await new FakeWorker(coordinator.grpcAddress).join('honest');
    await nextStep();
  });

  after(async () => {
    honest?.close();
    await ports?.coordinator.close();
    let reports;
    try {
      reports = ports ? readMetrics(ports.coordinator.runDir).filter((r) => r.type === 'epoch-report') : [];
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
      fs.rmSync(runsDir, { recursive: true, force: true });
    }
    process.stdout.write(`    hostile-input surface=ports cases=${CASES.length}\n`);
    assert.ok(reports.length > 0, 'the job reported no epoch');
    for (const r of reports) assert.ok(r.type === 'epoch-report' && r.exactlyOnce, `epoch report ${JSON.stringify(r)}`);
  });

  for (const c of CASES) {
    it(c.name, async () => {
      const before = await snapshot();
      await c.run(ports);
      assert.deepEqual(await snapshot(), before, 'the job state moved');
      await nextStep();
    });
  }

  afterEach(() => strangers.splice(0).forEach((w) => w.close()));
});
