import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // the tests wait on peers (BMCs, NATS, browsers) far more than they compute: at least two test
    // files at once even on a two-core machine (vitest's default there is one, which doubled CI time)
    maxWorkers: Math.max(2, availableParallelism()),
    minWorkers: 1,
    reporters: ['default'],
  },
});
