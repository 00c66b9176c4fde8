import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // In-process Temporal workers and wasm tfjs misbehave under worker threads: isolate in forks.
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Two cores: more parallel forks only slows the CPU-bound training tests down.
    maxWorkers: 2,
  },
});
