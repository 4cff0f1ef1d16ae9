import { defineConfig } from 'vitest/config';

// `make test-fleet`: the fleet suites. Several real libvirt hosts on this machine, each a libvirtd
// in its own network and mount namespace (scripts/test-host.sh; suites name theirs `vffl*`, INDEX
// 230-239), reached over qemu+tcp / qemu+ssh / qemu+tls; a private PostgreSQL cluster per run
// (test/support/postgres.ts) for the standby controller. One file at a time: the suites start and
// kill daemons. The hosts: test/support/fleet.ts; every `vffl*` host is stopped before and after
// the run (test/support/fleet-global-setup.ts), also when a killed run left them up.
export default defineConfig({
  test: {
    include: ['test/fleet/**/*.test.ts'],
    globalSetup: ['test/support/postgres-global-setup.ts', 'test/support/global-setup.ts', 'test/support/fleet-global-setup.ts'],
    setupFiles: ['test/support/temp-cleanup.ts'],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
});
