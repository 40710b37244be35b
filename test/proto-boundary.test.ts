import assert from 'node:assert/strict';
import * as path from 'node:path';
import { ESLint } from 'eslint';

/*
 * The project's eslint config keeps the generated proto types behind one adapter file per role. Linted
 * here with the real config, as if each snippet were the named file, so weakening or dropping the rule
 * fails this test, not only the next review.
 */

const ROOT = path.resolve(__dirname, '..');
const eslint = new ESLint({ cwd: ROOT });

/** The messages of the no-restricted-imports rule for `code` linted as `file`. */
async function restrictedImports(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return result.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

const GENERATED_TYPE = "import type { StepAssignment } from '../proto';\nexport type A = StepAssignment;\n";

describe('proto boundary: only the adapter files touch the generated types', function () {
  this.timeout(60_000);

  for (const file of ['worker/assignment.ts', 'coordinator/job-runner.ts']) {
    it(`refuses a generated type imported in ${file}`, async () => {
      const messages = await restrictedImports(file, GENERATED_TYPE);
      assert.equal(messages.length, 1, messages.join('\n'));
      assert.match(messages[0], /'StepAssignment' import from '\.\.\/proto' is restricted.*adapter file/);
    });
  }

  it('refuses a deep import of proto/generated below a role folder', async () => {
    const messages = await restrictedImports('coordinator/membership/roster.ts', "import { StepKind } from '../../proto/generated/shardwise';\nexport const K = StepKind.TRAIN;\n");
    assert.ok(messages.some((m) => /'StepKind' import .* is restricted.*adapter file/.test(m)), messages.join('\n'));
  });

  for (const file of ['worker/coordinator-link.ts', 'coordinator/coordinator-service.ts']) {
    it(`lets the adapter ${file} import them`, async () => {
      assert.deepEqual(await restrictedImports(file, GENERATED_TYPE), []);
    });
  }

  it('lets any file read the hand-written version constants', async () => {
    const code = "import { PROTOCOL_VERSION, SHARDWISE_VERSION } from '../proto';\nexport const V = [PROTOCOL_VERSION, SHARDWISE_VERSION];\n";
    assert.deepEqual(await restrictedImports('coordinator/worker-calls.ts', code), []);
  });
});
