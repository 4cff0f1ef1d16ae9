// @ts-check
/**
 * `make mutation`: StrykerJS on the data rule (src/reconcile/kinds/volume/data.ts) and the
 * mass-deletion brake and hold (src/reconcile/safety.ts), with the vitest runner on their unit
 * tests (vitest.mutation.config.ts). Not in CI: it takes minutes. Reports under bench/results/.
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts' },
  mutate: ['src/reconcile/kinds/volume/data.ts', 'src/reconcile/safety.ts'],
  coverageAnalysis: 'perTest',
  concurrency: 2,
  timeoutMS: 30000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'bench/results/mutation.html' },
  jsonReporter: { fileName: 'bench/results/mutation.json' },
  // Reruns test only the mutants whose code or tests changed (the file is kept under bench/results/).
  incremental: true,
  incrementalFile: 'bench/results/stryker-incremental.json',
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  thresholds: { high: 90, low: 80, break: null },
};
