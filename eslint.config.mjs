// Lint for hand-written TypeScript; generated code (proto/generated) is excluded.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Another folder is imported only through its index.ts. */
const INDEX_ONLY = {
  regex: '^(\\.\\./)+[^/.]+/(?!index$)[^/]+',
  message: 'Import another folder only through its index.ts.',
};

/**
 * The generated proto types stay behind one adapter file per role (worker/coordinator-link.ts,
 * coordinator/coordinator-service.ts); the rest of the role speaks its domain types. The two version
 * constants are hand-written in proto/index.ts, not generated, and may be read anywhere.
 */
const PROTO_ONLY_IN_ADAPTER = {
  regex: '^(\\.\\./)+proto(/.*)?$',
  allowImportNames: ['PROTOCOL_VERSION', 'SHARDWISE_VERSION'],
  message: 'Only the role\'s adapter file (worker/coordinator-link.ts, coordinator/coordinator-service.ts) touches generated proto types: convert there and pass domain types.',
};

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.test-build-*/**', '.cache/**', 'proto/generated/**', 'runs/**', 'helm/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', { patterns: [INDEX_ONLY] }],
    },
  },
  {
    files: ['worker/**/*.ts', 'coordinator/**/*.ts'],
    ignores: ['worker/coordinator-link.ts', 'coordinator/coordinator-service.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [INDEX_ONLY, PROTO_ONLY_IN_ADAPTER] }] },
  },
  // The status page's browser scripts are ES modules run in the browser, not in Node.
  // (`globals` is not a direct dependency: the few names it uses are listed here.)
  {
    files: ['status/assets/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: { window: 'readonly', document: 'readonly', EventSource: 'readonly', setTimeout: 'readonly' },
    },
  },
  // Tests may reach into a module to test it on its own.
  { files: ['test/**/*.ts'], rules: { 'no-restricted-imports': 'off' } },
);
