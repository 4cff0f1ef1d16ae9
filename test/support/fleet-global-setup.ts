// vitest globalSetup of `make test-fleet` (vitest.fleet.config.ts): the fleet suites' namespace
// hosts (`vffl*`, scripts/test-host.sh, test/support/fleet.ts) left up by a killed or failed run
// are stopped before the run, and every host of this run after it, by name and pid file; a host
// whose owner (the test process that started it) is alive belongs to another run and is left
// alone. test/support/global-setup.ts, beside it, sweeps the vftest objects of qemu:///system.
import { fleetSweep } from './test-host.js';

export default function setup(): () => void {
  if (process.getuid?.() !== 0) throw new Error('the fleet suites start namespace libvirt hosts: run them as root (make test-fleet)');
  fleetSweep();
  return () => {
    fleetSweep();
  };
}
