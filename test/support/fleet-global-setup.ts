// vitest globalSetup of `make test-fleet` (vitest.fleet.config.ts): every fleet suite's namespace
// host (`vffl*`, scripts/test-host.sh) is stopped before the run (a killed run may have left some
// up) and after it, by name and pid file (test/support/global-setup.ts, beside it, sweeps the
// vftest objects of qemu:///system, which suites of the fleet that use it need).
import { testHostsCleanup } from './test-host.js';

export default function setup(): () => void {
  if (process.getuid?.() !== 0) throw new Error('the fleet suites start namespace libvirt hosts: run them as root (make test-fleet)');
  testHostsCleanup('vffl');
  return () => testHostsCleanup('vffl');
}
