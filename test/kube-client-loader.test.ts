import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { loadKubeClient } from '../common/kube';

const REPO = path.resolve(__dirname, '..');

/** Compiles `file` (relative to the repo) the way `tsc -p .` does, with the project's compiler options. */
function compile(file: string): string {
  const { config } = ts.readConfigFile(path.join(REPO, 'tsconfig.json'), ts.sys.readFile);
  const { options } = ts.parseJsonConfigFileContent(config, ts.sys, REPO);
  return ts.transpileModule(readFileSync(path.join(REPO, file), 'utf8'), { compilerOptions: options, fileName: file }).outputText;
}

// @kubernetes/client-node is an ES module; the project compiles to CommonJS. The loader must survive that.
describe('kube: loading the ESM-only client from CommonJS', function () {
  this.timeout(60_000);

  it('loads under tsx (how the tests and bin/shardwise run)', async () => {
    const k8s = await loadKubeClient();
    assert.equal(typeof k8s.AppsV1Api, 'function');
    assert.equal(typeof k8s.setHeaderOptions, 'function');
    assert.equal(await loadKubeClient(), k8s, 'loaded once per process');
  });

  it('loads from the CommonJS that tsc emits, run by plain node', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'shardwise-cjs-'));
    try {
      const loader = compile('common/kube/client-loader.ts');
      const esmImport = compile('common/esm-import.ts');
      // The emit keeps a real import(): a require() of the package would be the bug this guards against.
      assert.doesNotMatch(loader, /require\(["']@kubernetes\/client-node["']\)/);
      assert.match(esmImport, /new Function\('specifier', 'return import\(specifier\)'\)/);
      assert.match(loader, /"use strict"[\s\S]*exports\.loadKubeClient = loadKubeClient/);
      mkdirSync(path.join(dir, 'kube'));
      writeFileSync(path.join(dir, 'esm-import.js'), esmImport);
      writeFileSync(path.join(dir, 'kube', 'client-loader.js'), loader);
      writeFileSync(path.join(dir, 'kube', 'node20-compat.js'), compile('common/kube/node20-compat.ts'));
      writeFileSync(path.join(dir, 'main.js'), [
        "const { loadKubeClient } = require('./kube/client-loader');",
        'loadKubeClient().then((k8s) => console.log(typeof k8s.AppsV1Api, typeof k8s.KubeConfig));',
      ].join('\n'));
      // NODE_PATH: the compiled files live outside the repo, its node_modules must still resolve.
      const { stdout } = await promisify(execFile)(process.execPath, [path.join(dir, 'main.js')], {
        env: { ...process.env, NODE_OPTIONS: '', NODE_PATH: path.join(REPO, 'node_modules') },
      });
      assert.equal(stdout.trim(), 'function function');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
