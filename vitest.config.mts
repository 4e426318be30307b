import { defineConfig } from 'vitest/config';

// Native addons and worker threads do not mix well with vitest's thread pool.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
