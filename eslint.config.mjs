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
  // Tests may reach into a module to test it on its own.
  { files: ['test/**/*.ts'], rules: { 'no-restricted-imports': 'off' } },
);
