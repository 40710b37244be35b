// Lint for hand-written TypeScript; generated code (proto/generated) is excluded.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.cache/**', 'proto/generated/**', 'runs/**', 'helm/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', {
        patterns: [{
          regex: '^(\\.\\./)+[^/.]+/(?!index$)[^/]+',
          message: 'Import another folder only through its index.ts.',
        }],
      }],
    },
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
