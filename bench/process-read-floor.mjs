// The floor of a no-op dry-run's reads (bench/process.bench.ts): a node process that connects
// with virtform's own RPC client and reads the definitions the dry-run reads (every domain's
// inactive XML and every volume's XML of one pool, 16 calls in flight per kind, as virtform does),
// hashes each (sha256, as the fast path does) and exits. No manifests, no state DB, no diff.
//   node bench/process-read-floor.mjs URI POOL
import { createHash } from 'node:crypto';
import { LibvirtClient } from '../dist/libvirt/index.js';

const [uri = 'qemu:///system', poolName] = process.argv.slice(2);
const c = await LibvirtClient.connect(uri);
const [domains, pool] = await Promise.all([c.connectListAllDomains(0), c.storagePoolLookupByName(poolName)]);
const volumes = await c.storagePoolListAllVolumes(pool, 0);
const readAll = async (items, read) => {
  let next = 0;
  const worker = async () => {
    while (next < items.length) createHash('sha256').update(await read(items[next++])).digest('hex');
  };
  await Promise.all(Array.from({ length: 16 }, worker));
};
await Promise.all([readAll(domains, (d) => c.domainGetXmlDesc(d, 2)), readAll(volumes, (v) => c.storageVolGetXmlDesc(v, 0))]);
await c.close();
console.log(`${domains.length} domains, ${volumes.length} volumes read`);
