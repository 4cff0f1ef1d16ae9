import { defineConfig } from 'vitest/config';

// `make mutation` (StrykerJS): the unit tests of the data rule and the brake, nothing else (a
// mutant is run against these files only, so a run takes minutes rather than hours).
export default defineConfig({
  test: {
    name: 'unit',
    setupFiles: ['test/support/temp-cleanup.ts'],
    include: [
      'test/unit/reconcile/volume-data.test.ts',
      'test/unit/reconcile/safety.test.ts',
      'test/unit/safety/engine-safety.test.ts',
    ],
    testTimeout: 20_000,
  },
});
