import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'coverage/**', 'web/dist/**', '.venv-anchors/**', 'docs/api/**', 'scratch/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // Randomness must come from the seeded RNG (docs/architecture.md, "Conventions").
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: 'Use the seeded Rng from core/rng.' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
);
