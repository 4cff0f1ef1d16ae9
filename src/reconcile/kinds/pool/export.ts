/** `virtform export` of storage pools: a `dir` pool → a StoragePool manifest (path, autostart). */
import type { HostPort, HostSnapshot } from '../../ports.js';
import { parsePoolXml } from '../../../libvirt/xml/pool.js';
import { API_VERSION, RESOURCE_NAME, unlessGone, type ExportHost, type ExportedObject } from '../../core/export.js';

export function exportPools(h: ExportHost): ExportedObject[] {
  return h.pools.map((p) => {
    const out: ExportedObject = {
      kind: 'StoragePool', name: p.name, file: `pool-${p.name}.yaml`, object: `pool ${p.name}`, libvirtName: p.name, managed: 'unknown', comments: [], warnings: [], needs: [],
    };
    if (!RESOURCE_NAME.test(p.name)) {
      out.warnings.push(`pool name ${JSON.stringify(p.name)} is not a resource name (1-63 lowercase letters, digits, "-"): virtform cannot manage it under that name (rename the pool first)`);
      return out;
    }
    if (p.type !== 'dir') {
      out.warnings.push(`pool ${p.name} is of type ${p.type || '(none)'}: virtform manages directory pools only`);
      return out;
    }
    out.doc = {
      apiVersion: API_VERSION, kind: 'StoragePool',
      metadata: { name: p.name, adopt: true },
      spec: { path: p.path, autostart: p.autostart },
    };
    return out;
  });
}

/** The host's pools as export reads them (their type from the inactive XML; `dir` when the host cannot give it). */
export async function readPoolsForExport(host: HostPort, snapshot: HostSnapshot): Promise<ExportHost['pools']> {
  const out: ExportHost['pools'] = [];
  for (const o of snapshot.pools) {
    const xml = host.inactiveXml ? await unlessGone(() => host.inactiveXml!('pool', o.name)) : null;
    if (xml !== null) {
      const p = parsePoolXml(xml);
      out.push({ name: o.name, uuid: o.uuid, active: o.active, autostart: o.autostart, path: p.path, type: p.type });
      continue;
    }
    const d = await unlessGone(() => host.getPool(o.name));
    if (d) out.push({ ...d, type: 'dir' });
  }
  return out;
}
