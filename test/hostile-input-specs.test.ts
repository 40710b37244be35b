import assert from 'node:assert/strict';
import { CommanderError } from 'commander';
import { buildProgram } from '../cli';
import { JobSpecError, parseJobSpec } from '../common/job';
import { parseSweepSpec, SweepSpecError } from '../sweep';

// Hostile input a user or a script can type: job specs and `--set` values, sweep specs, command-line flags.
// One row per distinct case; each must be refused with a message naming the field (or flag) and what was
// wrong, before anything starts, so nothing can be lost. Cases already covered elsewhere are not repeated
// here (job-spec.test.ts, sweep-spec.test.ts, cli.test.ts; docs/hostile-input.md lists them all).

const MINIMAL = 'model: {architecture: mobilenet_v1}\ntraining: {epochs: 3}\noptimizer: {learningRate: 0.01}\n';

interface SpecCase {
  name: string;
  /** The spec text (MINIMAL when absent). */
  text?: string;
  /** `--set` overrides. */
  set?: string[];
  /** What the first problem must say. */
  problem: RegExp;
}

const JOB_SPEC_CASES: SpecCase[] = [
  { name: 'zero epochs', set: ['training.epochs=0'], problem: /^training\.epochs: .*expected number to be >0, got 0$/ },
  { name: 'a zero batch size', set: ['training.batchSize=0'], problem: /^training\.batchSize: .*>0, got 0$/ },
  { name: 'a zero micro-batch size', set: ['training.microBatchSize=0'], problem: /^training\.microBatchSize: .*>0, got 0$/ },
  { name: 'a validation fraction above 1', set: ['data.valFraction=1.5'], problem: /^data\.valFraction: .*<1, got 1\.5$/ },
  { name: 'a negative validation fraction', set: ['data.valFraction=-0.1'], problem: /^data\.valFraction: .*>=0, got -0\.1$/ },
  { name: 'an unknown optimizer', set: ['optimizer.type=sgdx'], problem: /^optimizer\.type: .*"sgd"\|"adam"\|"adamw", got "sgdx"$/ },
  { name: 'an unknown schedule', set: ['schedule.type=cosinex'], problem: /^schedule\.type: .*"cosine".*got "cosinex"$/ },
  { name: 'a negative seed', set: ['seed=-1'], problem: /^seed: .*>=0, got -1$/ },
  { name: 'an infinite seed (1e400)', set: ['seed=1e400'], problem: /^seed: expected a number, got Infinity$/ },
  { name: 'a NaN learning rate', set: ['optimizer.learningRate=NaN'], problem: /^optimizer\.learningRate: expected a number, got "NaN"$/ },
  { name: 'an infinite learning rate (YAML .inf)', set: ['optimizer.learningRate=.inf'], problem: /^optimizer\.learningRate: expected a number, got Infinity$/ },
  { name: 'a dropout of 1 (nothing passes)', set: ['model.dropout=1'], problem: /^model\.dropout: .*<1, got 1$/ },
  { name: 'a zero heartbeat interval', set: ['distributed.heartbeatIntervalMs=0'], problem: /^distributed\.heartbeatIntervalMs: .*got 0$/ },
  { name: 'zero maxWorkers', set: ['distributed.maxWorkers=0'], problem: /^distributed\.maxWorkers: .*>0, got 0$/ },
  { name: 'a fractional worker count', set: ['distributed.desiredWorkers=2.5'], problem: /^distributed\.desiredWorkers: expected an integer, got 2\.5$/ },
  { name: 'a negative data limit', set: ['data.limit=-5'], problem: /^data\.limit: .*>=0, got -5$/ },
  { name: 'a path-traversal job name (names the run folder and the bus subject)', set: ['name=../../etc'], problem: /^name: must be .*a DNS label\), got "\.\.\/\.\.\/etc"$/ },
  { name: 'a NATS wildcard in the job name', set: ['name=a.*'], problem: /^name: must be .*got "a\.\*"$/ },
  { name: 'an empty --set key', set: ['=5'], problem: /^override '=5': expected key\.path=value$/ },
  { name: 'a duplicate key in the file', text: `${MINIMAL}training: {epochs: 4}\n`, problem: /^not valid YAML or JSON at line 4: Map keys must be unique/ },
  { name: 'a YAML alias bomb', text: `a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n${MINIMAL}`, problem: /^not valid YAML or JSON: Excessive alias count/ },
  { name: 'binary garbage instead of a spec', text: '\u0000\u0001\u0002garbage\uffff', problem: /^expected a mapping of sections \(model, training, \.\.\.\), got a string$/ },
  { name: 'an empty file', text: '', problem: /^expected a mapping of sections .*got an empty document$/ },
  { name: 'tabs as indentation', text: 'model:\n\tarchitecture: small_cnn\n', problem: /^not valid YAML or JSON at line 2: Tabs are not allowed/ },
  { name: 'a null section', text: MINIMAL.replace('training: {epochs: 3}', 'training: null'), problem: /^training: expected a mapping, got null$/ },
  { name: 'nesting 5000 deep', text: `a: ${'['.repeat(5000)}${']'.repeat(5000)}\n${MINIMAL}`, problem: /^not valid YAML or JSON at line 1: Maximum call stack size exceeded/ },
  { name: 'a __proto__ key (prototype pollution)', text: `__proto__: {polluted: 1}\n${MINIMAL}`, problem: /^\(top level\): unknown key '__proto__'$/ },
  { name: 'a constructor key inside a section', text: MINIMAL.replace('training: {epochs: 3}', 'training: {constructor: {prototype: {x: 1}}, epochs: 3}'), problem: /^training: unknown key 'constructor'$/ },
];

const JOB = 'job: { model: { architecture: small_cnn }, training: { epochs: 4 }, optimizer: { learningRate: 0.01 } }';
const sweep = (rest: string, name = 's'): string => `name: ${name}\n${JOB}\n${rest}`;
const OBJECTIVE = 'objective: { metric: val.top1 }\n';

const SWEEP_SPEC_CASES: { name: string; text: string; problem: RegExp }[] = [
  { name: 'a path-traversal sweep name (names the sweep folder)', text: sweep(`parameters: { seed: [1] }\n${OBJECTIVE}`, '../../etc'), problem: /^name: must be lower-case letters, digits and dashes, got "\.\.\/\.\.\/etc"$/ },
  { name: 'no parameters', text: sweep(`parameters: {}\n${OBJECTIVE}`), problem: /^parameters: expected at least one parameter/ },
  { name: 'a parameter with no values', text: sweep(`parameters: { seed: [] }\n${OBJECTIVE}`), problem: /^parameters\.seed: expected a non-empty list of values, or a mapping with type choice, int, uniform or log-uniform, got a list$/ },
  { name: 'a parameter given one bare value', text: sweep(`parameters: { seed: 5 }\n${OBJECTIVE}`), problem: /^parameters\.seed: expected a non-empty list of values.*got 5$/ },
  { name: 'an unknown objective metric', text: sweep('parameters: { seed: [1] }\nobjective: { metric: val.f1 }\n'), problem: /^objective\.metric: expected a validation metric \(val\.top1, val\.top5, val\.loss\).*got "val\.f1"$/ },
  { name: 'a zero trial budget', text: sweep(`parameters: { seed: [1] }\n${OBJECTIVE}budget: { maxTrials: 0 }\n`), problem: /^budget\.maxTrials: .*>0, got 0$/ },
  { name: 'an unknown search algorithm', text: sweep(`parameters: { seed: [1] }\n${OBJECTIVE}algorithm: { type: bayes }\n`), problem: /^algorithm\.type: .*'grid' \| 'random' \| 'tpe'/ },
  { name: 'an unknown objective direction', text: sweep('parameters: { seed: [1] }\nobjective: { metric: val.top1, direction: up }\n'), problem: /^objective\.direction: .*"maximize"\|"minimize", got "up"$/ },
  { name: 'no base job', text: `name: s\nparameters: { seed: [1] }\n${OBJECTIVE}`, problem: /^job: required$/ },
];

/** Flag-level refusals: commander must stop before any command runs. */
const FLAG_CASES: { name: string; args: string[]; error: RegExp }[] = [
  { name: 'a port above 65535', args: ['coordinator', '--job', 'j.yaml', '--port', '70000'], error: /'--port <port>' argument '70000' is invalid\. expected a port 0-65535, got '70000'/ },
  { name: 'a port that is a word', args: ['coordinator', '--job', 'j.yaml', '--port', 'http'], error: /'--port <port>' argument 'http' is invalid/ },
  { name: 'a fractional metrics port', args: ['coordinator', '--job', 'j.yaml', '--metrics-port', '1.5'], error: /'--metrics-port <port>' argument '1\.5' is invalid/ },
  { name: 'a negative stop grace', args: ['coordinator', '--job', 'j.yaml', '--stop-grace', '-3'], error: /'--stop-grace <seconds>' argument '-3' is invalid\. expected a positive number of seconds/ },
  { name: 'a drain grace that is a word', args: ['coordinator', '--job', 'j.yaml', '--drain-grace', 'soon'], error: /'--drain-grace <seconds>' argument 'soon' is invalid/ },
  { name: 'a split with a non-number', args: ['coordinator', '--job', 'j.yaml', '--split', '1,x'], error: /'--split <counts>' argument '1,x' is invalid\. expected positive integers like 1,3/ },
  { name: 'a --set without =', args: ['coordinator', '--job', 'j.yaml', '--set', 'training.epochs'], error: /'--set <key=value>' argument 'training\.epochs' is invalid\. expected key\.path=value/ },
  { name: 'an unknown backend', args: ['coordinator', '--job', 'j.yaml', '--backend', 'cuda'], error: /'--backend <name>' argument 'cuda' is invalid\. Allowed choices are auto, tensorflow, wasm, cpu/ },
  { name: 'a missing --job', args: ['coordinator'], error: /required option '--job <file>' not specified/ },
  { name: 'an unknown flag', args: ['coordinator', '--job', 'j.yaml', '--bogus'], error: /unknown option '--bogus'/ },
  { name: 'a zero retry limit', args: ['worker', '--coordinator', 'x:1', '--retry-limit', '0'], error: /'--retry-limit <seconds>' argument '0' is invalid/ },
  { name: 'a data port of 65536', args: ['worker', '--coordinator', 'x:1', '--data-port', '65536'], error: /'--data-port <port>' argument '65536' is invalid/ },
  { name: 'a negative id-in-use wait', args: ['worker', '--coordinator', 'x:1', '--id-in-use-wait', '-1'], error: /'--id-in-use-wait <seconds>' argument '-1' is invalid/ },
  { name: 'scaling to zero workers', args: ['scale', '--workers', '0', '--coordinator', 'x:1'], error: /'--workers <n>' argument '0' is invalid\. expected a whole number of workers >= 1/ },
  { name: 'a fractional cluster size', args: ['cluster', '--job', 'j.yaml', '--workers', '2.5'], error: /'--workers <n>' argument '2\.5' is invalid\. expected a worker count from 1 to 64/ },
  { name: 'certificates valid for 0 days', args: ['certs', '--out', 'x', '--days', '0'], error: /'--days <n>' argument '0' is invalid\. expected an integer >= 1/ },
  { name: 'an unknown sweep executor', args: ['sweep', '--spec', 's.yaml', '--executor', 'slurm'], error: /'--executor <type>' argument 'slurm' is invalid\. Allowed choices are local, kubernetes/ },
  { name: 'an unknown command', args: ['frobnicate'], error: /unknown command 'frobnicate'/ },
];

/** Raised by a preAction hook: the flags parsed, and a command would have run. */
class ActionReached extends Error {}

/** Parses `args` as the CLI does, running no command; returns commander's error. */
function flagError(args: string[]): CommanderError {
  const program = buildProgram();
  for (const command of [program, ...program.commands]) {
    command.exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  }
  program.hook('preAction', () => {
    throw new ActionReached(`${args.join(' ')}: the flags were accepted`);
  });
  try {
    program.parse(args, { from: 'user' });
  } catch (err) {
    assert.ok(err instanceof CommanderError, `expected a CommanderError, got ${String(err)}`);
    return err;
  }
  assert.fail(`${args.join(' ')}: accepted`);
}

function firstProblem(fn: () => unknown, errorClass: typeof JobSpecError | typeof SweepSpecError): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof errorClass, `expected ${errorClass.name}, got ${String(err)}`);
    return err.problems[0];
  }
  assert.fail('accepted');
}

describe('hostile input: job specs, sweep specs and flags are refused before anything starts', () => {
  describe(`job spec and --set (${JOB_SPEC_CASES.length} cases)`, () => {
    for (const c of JOB_SPEC_CASES) {
      it(c.name, () => assert.match(firstProblem(() => parseJobSpec(c.text ?? MINIMAL, '<test>', c.set ?? []), JobSpecError), c.problem));
    }
  });

  describe(`sweep spec (${SWEEP_SPEC_CASES.length} cases)`, () => {
    for (const c of SWEEP_SPEC_CASES) {
      it(c.name, () => assert.match(firstProblem(() => parseSweepSpec(c.text), SweepSpecError), c.problem));
    }
  });

  describe(`command-line flags (${FLAG_CASES.length} cases)`, () => {
    for (const c of FLAG_CASES) {
      it(c.name, () => {
        const err = flagError(c.args);
        assert.match(err.message, c.error);
      });
    }
  });

  after(() => {
    const count = JOB_SPEC_CASES.length + SWEEP_SPEC_CASES.length + FLAG_CASES.length;
    process.stdout.write(`    hostile-input surface=specs-and-flags cases=${count}\n`);
  });
});

