/**
 * The HostPort contract against the libvirt adapter: on the real daemon (qemu:///system: a
 * directory pool in a fresh directory under /var/lib/virtform-test, isolated networks without
 * <forward>, VMs that boot nothing) and on libvirt's test driver (test+unix:///default), whose
 * departures from the qemu driver are listed in TEST_DRIVER.
 */
import { afterAll, beforeAll } from 'vitest';
import { chmodSync, mkdtempSync, readFileSync } from 'node:fs';
import { openHost } from '../../../src/reconcile/adapters/libvirt-host.js';
import { describeHostContract, LIBVIRTD, type HostQuirks } from '../../support/host-contract.js';
import { TEST_POOL_ROOT } from '../../support/real-host.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('contract');
const P = N.base;

beforeAll(() => N.cleanup());
afterAll(() => N.cleanup());

describeHostContract('libvirt adapter on qemu:///system', () => openHost('qemu:///system'), {
  prefix: P,
  poolDir: (name) => {
    // A fresh directory the daemon (and qemu, running as another user) can read.
    const dir = mkdtempSync(`${TEST_POOL_ROOT}/${name}-`);
    chmodSync(dir, 0o755);
    return dir;
  },
  subnet: [248, 1],
  domainType: 'kvm-or-qemu',
  quirks: LIBVIRTD,
  readVolume: (_host, path) => readFileSync(path),
});

/** libvirt's test driver (in-memory, per connection) departs from the qemu driver here. */
const TEST_DRIVER: HostQuirks = {
  volumeExistsCode: 'operation-failed', // VIR_ERR_OPERATION_FAILED "storage vol already exists"
  resize: false, // no virStorageVolResize
  checksVolumes: false, // no backing-file or volume-name check
  checksOnStart: false, // starts with missing disks, missing or inactive networks
  transientNetworks: false, // "Network ... is still running"
  transientDomainRefusesAutostart: false,
  keepsFilesOfDeletedPool: false, // no real directory
  redefineActiveNetworkApplies: false, // the new definition is lost: the old one shows after a restart
  upload: false, // "this function is not supported by the connection driver: virStorageVolUpload"
  leases: false, // "this function is not supported by the connection driver: virNetworkGetDHCPLeases"
  madeUpInterfaceAddresses: true, // testDomainInterfaceAddresses: 192.168.122.x for every interface, whatever the source
  writesDefaultCpu: false, // a definition without <cpu> reads back without one
  domainCapabilities: false, // "this function is not supported by the connection driver: virConnectGetDomainCapabilities"
  liveDomainChanges: false, // setMemoryFlags: "Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually exclusive"
};

describeHostContract('libvirt adapter on test+unix:///default', () => openHost('test+unix:///default'), {
  prefix: `${P}-td`,
  poolDir: (name) => `/${name}`,
  subnet: [248, 1],
  domainType: 'qemu',
  quirks: TEST_DRIVER,
});
