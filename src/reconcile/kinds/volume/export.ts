/**
 * `virtform export` of volumes: a qcow2 or raw file named `<name>.qcow2` / `<name>.img` in a
 * directory pool → a Volume manifest (pool, capacity in bytes, format, backingVolume). `source`
 * is left out: export never reads a volume's contents, and a volume without `source` keeps them.
 */
import type { VolumeDetail } from '../../../model/definitions.js';
import type { HostPort } from '../../ports.js';
import { API_VERSION, RESOURCE_NAME, unlessGone, type ExportHost, type ExportedObject } from '../../core/export.js';
import { volumeFileName } from './index.js';

/** The resource name of a volume file (`web-1-root.qcow2` → `web-1-root`), when its name and format allow one. */
export function volumeResourceName(v: Pick<VolumeDetail, 'name' | 'format'>): string | undefined {
  const format = v.format === 'qcow2' || v.format === 'raw' ? v.format : v.format === 'iso' ? 'raw' : undefined;
  if (!format) return undefined;
  const ext = format === 'qcow2' ? '.qcow2' : '.img';
  if (!v.name.endsWith(ext)) return undefined;
  const name = v.name.slice(0, -ext.length);
  return RESOURCE_NAME.test(name) && volumeFileName(name, format) === v.name ? name : undefined;
}

export const NO_SOURCE_COMMENT = 'spec.source left out: export never reads a volume\'s contents; without a source the volume keeps what it holds';

export function exportVolumes(h: ExportHost): ExportedObject[] {
  const byPath = new Map(h.volumes.map((v) => [v.path, v]));
  return h.volumes.map((v) => {
    const name = volumeResourceName(v);
    const out: ExportedObject = {
      kind: 'Volume', name: name ?? v.name, file: `volume-${name ?? v.name}.yaml`, object: `volume ${v.pool}/${v.name}`, libvirtName: v.name, managed: 'unknown',
      comments: [], warnings: [], needs: [],
    };
    const pool = h.pools.find((p) => p.name === v.pool);
    if (!name) {
      out.warnings.push(v.format !== 'qcow2' && v.format !== 'raw' && v.format !== 'iso'
        ? `volume ${v.pool}/${v.name} has format ${v.format || '(unknown)'}: virtform manages qcow2 and raw volumes only`
        : `volume file ${v.pool}/${v.name} is not named <name>.${v.format === 'qcow2' ? 'qcow2' : 'img'} with a resource name (1-63 lowercase letters, digits, "-"): ` +
          'virtform names a volume\'s file after the resource, so it cannot manage this one under its file name (rename the file first)');
      return out;
    }
    if (pool?.type !== 'dir') {
      out.warnings.push(`volume ${v.pool}/${v.name} is in a ${pool?.type ?? 'unknown'} pool: virtform manages directory pools only`);
      return out;
    }
    // An ISO image is a raw file (libvirt probes it as format `iso`).
    const spec: Record<string, unknown> = { pool: v.pool, capacity: v.capacityBytes, format: v.format === 'iso' ? 'raw' : v.format };
    if (v.backingPath) {
      const base = byPath.get(v.backingPath);
      const baseName = base ? volumeResourceName(base) : undefined;
      if (!base || !baseName) {
        out.warnings.push(`backing file ${v.backingPath} is ${base ? 'a volume virtform cannot name' : 'not a volume of any pool'}: a Volume cannot name it as backingVolume`);
        return out;
      }
      spec.backingVolume = baseName;
      out.needs.push({ kind: 'Volume', name: baseName });
    }
    out.needs.push({ kind: 'StoragePool', name: v.pool });
    out.comments.push(NO_SOURCE_COMMENT);
    out.doc = { apiVersion: API_VERSION, kind: 'Volume', metadata: { name, adopt: true }, spec };
    return out;
  });
}

/** The volumes of the host's active pools (an inactive pool cannot list its volumes). */
export async function readVolumesForExport(host: HostPort, pools: ExportHost['pools']): Promise<VolumeDetail[]> {
  const out: VolumeDetail[] = [];
  for (const p of pools) {
    if (!p.active) continue;
    for (const v of (await unlessGone(() => host.listVolumes(p.name))) ?? []) {
      const d = await unlessGone(() => host.getVolume(p.name, v.name));
      if (d) out.push(d);
    }
  }
  return out;
}
