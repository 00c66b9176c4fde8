import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // In-process Temporal workers and wasm tfjs misbehave under worker threads: isolate in forks.
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // One test file at a time: the resilience tests restart the shared Postgres server and the multi-host tests
    // kill whole simulated hosts, which must not hit other files' connections mid-query. On two cores running
    // files in parallel saved little anyway.
    fileParallelism: false,
    maxWorkers: 1,
  },
});
