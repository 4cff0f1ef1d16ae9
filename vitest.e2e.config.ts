import { defineConfig } from 'vitest/config';

// make test-e2e: the end-to-end suites on qemu:///system, kept out of `make test` so it stays under
// 10 minutes (CI runs both): real guests booted under TCG (the tiny guest booted by virtform
// manifests: spec.boot, spec.cloudInit, addresses and --wait; the serial console; Debian's
// cloud-init reading a seed; a real Debian guest with cloud-init, built and cached by
// scripts/build-debian-guest.sh), addresses of many VMs, URL imports from a loopback HTTP(S) server,
// watch --git through a git daemon, the safety controls (brake, suspend, policy, conditions), and
// the two slowest VM suites (deep drift of every VM field; disks changing hands between VMs), and
// state DBs made by older virtforms upgrading (scripts/old-build.sh builds them once, cached).
// One file at a time; the global setup sweeps leftover vftest* objects.
export default defineConfig({
  test: {
    include: [
      'test/integration/guest/**/*.test.ts', 'test/integration/cli/console.test.ts', 'test/guest/**/*.test.ts',
      'test/integration/status/addresses.test.ts', 'test/integration/reconcile/url-source.test.ts', 'test/integration/reconcile/url-policy.test.ts',
      'test/integration/watch/git.test.ts', 'test/integration/safety/controls.test.ts',
      'test/integration/reconcile/vm-drift.test.ts', 'test/integration/reconcile/vm-order.test.ts',
      'test/integration/upgrade/**/*.test.ts',
      // issue 24 (helper restart): virtform restart end to end (~100 s: restarts, a watcher, a crash)
      'test/integration/cli/restart.test.ts',
    ],
    globalSetup: ['test/support/global-setup.ts'],
    setupFiles: ['test/support/temp-cleanup.ts'],
    fileParallelism: false,
    testTimeout: 900_000,
    hookTimeout: 1_800_000,
  },
});
