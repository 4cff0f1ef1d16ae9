/** The HostPort contract against the in-memory FakeHost the unit tests use. */
import { describeHostContract } from '../../support/host-contract.js';
import { FakeHost } from '../../support/fake-host.js';

describeHostContract('FakeHost', async () => {
  const host = new FakeHost();
  host.lifecycleEvents = true;
  return host;
}, {
  prefix: 'vftest-contract-fake',
  poolDir: (name) => `/fake/pools/${name}`,
  subnet: [248, 1],
  domainType: 'qemu',
  eventTimeoutMs: 2_000,
  readVolume: (host, path) => (host as FakeHost).contents.get(path) ?? Buffer.alloc(0),
});
