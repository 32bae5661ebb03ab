// @ts-check
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'coverage/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // `void p` is no excuse: a dropped promise that rejects ends the Node process.
          ignoreVoid: false,
          // node:test's describe/it return promises that the runner itself awaits.
          allowForKnownSafeCalls: [
            {
              from: 'package',
              name: ['describe', 'it', 'test', 'suite', 'before', 'after'],
              package: 'node:test',
            },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      // `async` without `await` is deliberate: every API method must reject, never throw.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // The core does no I/O (STYLE.md §2): keep network, fs and drivers out of it.
    files: ['src/engine/**', 'src/query/**', 'src/groups/**', 'src/names/**', 'src/kv/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            'ws',
            'pg',
            'node:net',
            'node:fs',
            'node:fs/promises',
            'better-sqlite3',
            'ioredis',
          ],
        },
      ],
    },
  },
)
