import { defineConfig } from 'vitest/config';

// make test-guest: real guests booted on qemu:///system under TCG: the tiny guest (kernel + busybox
// initramfs) booted by virtform manifests (spec.boot, spec.cloudInit, addresses, --wait), the serial
// console (virtform console), Debian's cloud-init reading a seed, and a real Debian guest with
// cloud-init (scripts/build-debian-guest.sh builds and caches it). Not part of `make test`: a cold
// image build takes ~4 min and each Debian boot ~1.5 min under TCG. One file at a time; the global
// setup sweeps leftover vftest* objects.
export default defineConfig({
  test: {
    include: ['test/integration/guest/**/*.test.ts', 'test/integration/cli/console.test.ts', 'test/guest/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    fileParallelism: false,
    testTimeout: 900_000,
    hookTimeout: 1_800_000,
  },
});
