import assert from 'node:assert/strict';
import { ConfigError } from '../common/errors';
import { parseJobSpec } from '../common/job';
import { PROTOCOL_VERSION, RegisterResponse, SHARDWISE_VERSION, WorkerState } from '../proto';
import {
  IncompatibleCoordinatorError,
  WorkerLifecycle,
  WorkerStateError,
  compileWorkerOptions,
  defaultWorkerId,
  lifecycleToProto,
  nextLifecycle,
  parseRegistration,
  workerCapabilities,
} from '../worker';

const SPEC = parseJobSpec('name: reg-job\nmodel: {architecture: small_cnn}\ntraining: {epochs: 2}\noptimizer: {learningRate: 0.1}');

function response(overrides: Partial<RegisterResponse> = {}): RegisterResponse {
  return RegisterResponse.fromPartial({
    workerId: 'w-7', jobSpecJson: JSON.stringify(SPEC), configVersion: 3, maxMessageBytes: 4 << 20, heartbeatIntervalMs: 1000,
    leaseMs: 10_000, stepDeadlineMs: 120_000, globalStep: 12, natsUrl: 'nats://127.0.0.1:4222', jobId: 'reg-job', ...overrides,
  });
}

describe('worker registration, options and lifecycle', () => {
  it('states its protocol and package version, pid and host', () => {
    const caps = workerCapabilities({ workerId: 'w', processId: 'p', backend: 'wasm', maxMessageBytes: 1024, modelFingerprint: 'sha256:x' });
    assert.deepEqual([caps.protocolVersion, caps.shardwiseVersion, caps.pid, caps.backend, caps.modelFingerprint, caps.architecture],
      [PROTOCOL_VERSION, SHARDWISE_VERSION, process.pid, 'wasm', 'sha256:x', '']);
  });

  it('reads a RegisterResponse: the job spec validated, an empty NATS URL meaning no bus', () => {
    const reg = parseRegistration(response(), '127.0.0.1:5000');
    assert.deepEqual(reg.spec, SPEC);
    assert.deepEqual([reg.workerId, reg.configVersion, reg.globalStep, reg.natsUrl, reg.jobId], ['w-7', 3, 12, 'nats://127.0.0.1:4222', 'reg-job']);
    const noBus = parseRegistration(response({ natsUrl: '', jobId: '' }), '127.0.0.1:5000');
    assert.equal(noBus.natsUrl, undefined);
    assert.equal(noBus.jobId, 'reg-job', 'the job id defaults to the spec name');
  });

  it('refuses a job spec it cannot validate and nonsensical limits, as incompatible', () => {
    const badSpec = { ...JSON.parse(JSON.stringify(SPEC)), training: { ...SPEC.training, epochs: 'two' } };
    assert.throws(() => parseRegistration(response({ jobSpecJson: JSON.stringify(badSpec) }), 'c:1'),
      (e: unknown) => e instanceof IncompatibleCoordinatorError && /job spec does not validate/.test(e.message) && /training\.epochs/.test(e.message));
    assert.throws(() => parseRegistration(response({ jobSpecJson: '{' }), 'c:1'), IncompatibleCoordinatorError);
    assert.throws(() => parseRegistration(response({ heartbeatIntervalMs: 0 }), 'c:1'),
      (e: unknown) => e instanceof IncompatibleCoordinatorError && /heartbeat_interval_ms/.test(e.message));
  });

  it('compiles options: defaults, and errors that name the field', () => {
    const o = compileWorkerOptions({ coordinator: '127.0.0.1:7000' });
    assert.deepEqual([o.id, o.metricsPort, o.backend, o.pullWaitMs, o.retryLimitMs], [defaultWorkerId(), 0, 'auto', 5000, 300_000]);
    assert.match(defaultWorkerId('host', 42), /^host-42$/);
    const bad: Array<[Parameters<typeof compileWorkerOptions>[0], string]> = [
      [{ coordinator: 'localhost' }, 'coordinator'],
      [{ coordinator: 'h:1', id: 'has space' }, 'id'],
      [{ coordinator: 'h:1', metricsPort: 70000 }, 'metricsPort'],
      [{ coordinator: 'h:1', rpcDeadlineMs: 5000, transferDeadlineMs: 1000 }, 'transferDeadlineMs'],
      [{ coordinator: 'h:1', retryLimitMs: 0 }, 'retryLimitMs'],
    ];
    for (const [options, field] of bad) {
      assert.throws(() => compileWorkerOptions(options), (e: unknown) => e instanceof ConfigError && e.field === field, field);
    }
  });

  it('moves through its lifecycle only forward', () => {
    assert.equal(nextLifecycle(WorkerLifecycle.Starting, WorkerLifecycle.Running), 'running');
    assert.equal(nextLifecycle(WorkerLifecycle.Running, WorkerLifecycle.Draining), 'draining');
    assert.throws(() => nextLifecycle(WorkerLifecycle.Draining, WorkerLifecycle.Running), WorkerStateError);
    assert.throws(() => nextLifecycle(WorkerLifecycle.Stopped, WorkerLifecycle.Failed), WorkerStateError);
    assert.equal(lifecycleToProto(WorkerLifecycle.Draining), WorkerState.DRAINING);
  });
});
