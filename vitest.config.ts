import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { IN_CI } from './packages/test-helpers/src/ci.js';

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      '@headway/protocol/codes': src('./packages/protocol/src/codes.ts'),
      '@headway/protocol': src('./packages/protocol/src/index.ts'),
      '@headway/server': src('./packages/server/src/index.ts'),
      '@headway/client': src('./packages/client/src/index.ts'),
      '@headway/react': src('./packages/react/src/index.ts'),
      '@headway/worker/bullmq': src('./packages/worker/src/bullmq.ts'),
      '@headway/worker': src('./packages/worker/src/index.ts'),
      '@headway/test-helpers/browser': src('./packages/test-helpers/src/browser.ts'),
      '@headway/test-helpers': src('./packages/test-helpers/src/index.ts'),
    },
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'packages/*/test/**/*.test.tsx', 'apps/*/test/**/*.test.ts'],
    // Suites that spawn the compiled `headway` command need every dist/ current.
    globalSetup: ['./packages/test-helpers/src/build.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Suites start real servers on port 0; two workers match this 2-core machine.
    pool: 'forks',
    reporters: IN_CI ? ['default', ['json', { outputFile: '.vitest-results.json' }]] : ['default'],
    maxWorkers: 2,
  },
});
