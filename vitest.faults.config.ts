import { defineConfig } from 'vitest/config';

// Fault suite: crash/kill/disk-full/lock scenarios against the real libvirtd (objects vftest-fault<x>-*, suite names from test/support/names.ts),
// and the crash matrix (SIGKILL at every journal boundary, vftest-crash-*).
// One file at a time; long timeouts (the crash rounds run many short CLI processes).
// test/faults/global-setup.ts waits for libvirtd (other suites restart it), then runs the shared
// test/support/global-setup.ts (vftest cleanup before and after).
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts', 'test/integration/reconcile/crash.test.ts'],
    globalSetup: ['test/faults/global-setup.ts'],
    setupFiles: ['test/support/temp-cleanup.ts'],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 180_000,
  },
});
