import { defineConfig } from 'vitest/config';

// `make test-postgres`: the state store's contract on PostgreSQL (and SQLite), and the engine's
// reconcile integration suite once with its state DB on PostgreSQL. One private cluster per run
// (test/support/postgres.ts: initdb in a temp dir, pg_ctl on 127.0.0.1 and a free port), torn down
// after; each test file gets databases of its own on it (testDbLocation). Needs Debian's
// postgresql (make setup) and, for the integration suite, libvirtd on qemu:///system.
export default defineConfig({
  test: {
    include: [
      'test/unit/state/contract.test.ts',
      'test/unit/state/host-rekey.test.ts',
      'test/unit/state/lease.test.ts',
      'test/unit/state/lease-machine.test.ts',
      'test/unit/state/postgres-auth.test.ts',
      'test/unit/state/postgres-cluster.test.ts',
      'test/integration/reconcile/reconcile.test.ts',
      'test/integration/reconcile/lease.test.ts',
    ],
    globalSetup: ['test/support/postgres-global-setup.ts', 'test/support/global-setup.ts'],
    setupFiles: ['test/support/temp-cleanup.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
