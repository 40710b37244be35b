import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const COMMITTED = path.join(ROOT, 'proto/generated');
const HEADER = '// generated from proto/shardwise.proto by scripts/gen-proto.sh - do not edit';

function hasProtoc(): boolean {
  return spawnSync('protoc', ['--version'], { stdio: 'ignore' }).status === 0;
}

describe('proto/generated', function () {
  // protoc itself takes well under a second; an apt-get install of it (first run as root) takes longer.
  this.timeout(300_000);
  let fresh: string;

  before(function () {
    if (!hasProtoc() && process.getuid?.() !== 0) {
      // Not root, so gen-proto.sh cannot apt-get install protobuf-compiler: nothing to compare with.
      console.log('      skipped: protoc is missing and only root can install it (apt-get install protobuf-compiler)');
      this.skip();
    }
    fresh = mkdtempSync(path.join(tmpdir(), 'shardwise-proto-'));
    execFileSync('bash', [path.join(ROOT, 'scripts/gen-proto.sh'), fresh], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  });

  after(() => {
    if (fresh) rmSync(fresh, { recursive: true, force: true });
  });

  it('is what scripts/gen-proto.sh generates from proto/shardwise.proto (run it after editing the .proto)', () => {
    const want = readdirSync(fresh).sort();
    assert.ok(want.length > 0, 'gen-proto.sh generated no file');
    assert.deepEqual(readdirSync(COMMITTED).sort(), want, 'proto/generated holds other files than gen-proto.sh makes');
    for (const f of want) {
      const committed = readFileSync(path.join(COMMITTED, f));
      const generated = readFileSync(path.join(fresh, f));
      assert.ok(committed.equals(generated), `proto/generated/${f} is stale: run scripts/gen-proto.sh`);
    }
  });

  it('starts every generated file with the do-not-edit header', () => {
    for (const f of readdirSync(COMMITTED)) {
      const firstLine = readFileSync(path.join(COMMITTED, f), 'utf8').split('\n', 1)[0];
      assert.equal(firstLine, HEADER, `proto/generated/${f}`);
    }
  });
});
