import { defineConfig } from 'vitest/config';

// make test-guest: a real Debian guest with cloud-init booted on qemu:///system (scripts/build-debian-guest.sh
// builds and caches it). Not part of `make test`: a cold image build takes ~4 min and each boot
// ~1.5 min under TCG. One file at a time; the global setup sweeps leftover vftest* objects.
export default defineConfig({
  test: {
    include: ['test/guest/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    fileParallelism: false,
    testTimeout: 900_000,
    hookTimeout: 1_800_000,
  },
});
