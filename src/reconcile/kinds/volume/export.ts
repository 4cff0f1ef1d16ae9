/**
 * `virtform export` of volumes: a qcow2 or raw file in a directory pool → a Volume manifest (pool,
 * capacity in bytes, format, backingVolume). A file named `<name>.qcow2` / `<name>.img` is Volume
 * `<name>`; any other file (kcli's `<vm>_0.img`, terraform's `ubuntu-qcow2`) gets a name derived
 * from the file name and `spec.fileName`. `source` is left out: export never reads a volume's
 * contents, and a volume without `source` keeps them.
 */
import type { VolumeDetail } from '../../../model/definitions.js';
import type { HostPort } from '../../ports.js';
import { API_VERSION, RESOURCE_NAME, unlessGone, type ExportHost, type ExportedObject } from '../../core/export.js';
import { volumeFileName } from './index.js';

/** The volume file names `spec.fileName` takes (the schema's pattern). */
const FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}$/;

function exportFormat(v: Pick<VolumeDetail, 'format'>): 'qcow2' | 'raw' | undefined {
  return v.format === 'qcow2' || v.format === 'raw' ? v.format : v.format === 'iso' ? 'raw' : undefined;
}

/** The resource name of a volume file (`web-1-root.qcow2` → `web-1-root`), when its name and format allow one. */
export function volumeResourceName(v: Pick<VolumeDetail, 'name' | 'format'>): string | undefined {
  const format = exportFormat(v);
  if (!format) return undefined;
  const ext = format === 'qcow2' ? '.qcow2' : '.img';
  if (!v.name.endsWith(ext)) return undefined;
  const name = v.name.slice(0, -ext.length);
  return RESOURCE_NAME.test(name) && volumeFileName(name, format) === v.name ? name : undefined;
}

const KNOWN_EXT = /\.(qcow2|img|raw|iso)$/i;

/** `kcli_vm_0.IMG` → `kcli-vm-0`: lower case, a known extension dropped, other characters `-`, at most 63. */
function derivedName(file: string, keepExtension = false): string {
  const base = (keepExtension ? file : file.replace(KNOWN_EXT, '')).toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+/, '').slice(0, 63).replace(/-+$/, '');
  return base || 'volume';
}

export type VolumeNames = (v: Pick<VolumeDetail, 'pool' | 'name'>) => { name: string; fileName?: string } | undefined;

/**
 * The resource name of every volume of the export: `<name>` for a file named `<name>.qcow2` /
 * `<name>.img` (kept first), else derived from the file name (`derivedName`) with the file as
 * `fileName`. A derived name is unique within the export, and differs from the names in `others`
 * (the host's domains, networks and pools, so that `export NAME` names one object): when taken, the
 * extension is kept (`kvm.ISO` → `kvm-iso`, beside domain `kvm`), then `-2`, `-3`… in pool and
 * file order. A file `spec.fileName` cannot take, or of another format, has none.
 */
export function volumeNames(volumes: readonly VolumeDetail[], others: Iterable<string> = []): VolumeNames {
  const out = new Map<string, { name: string; fileName?: string }>();
  const taken = new Set<string>();
  const reserved = new Set(others);
  const key = (v: Pick<VolumeDetail, 'pool' | 'name'>): string => `${v.pool}/${v.name}`;
  const sorted = [...volumes].sort((a, b) => (a.pool === b.pool ? (a.name < b.name ? -1 : 1) : a.pool < b.pool ? -1 : 1));
  for (const v of sorted) {
    const name = volumeResourceName(v);
    if (name && !taken.has(name)) {
      taken.add(name);
      out.set(key(v), { name });
    }
  }
  for (const v of sorted) {
    if (out.has(key(v)) || !exportFormat(v) || !FILE_NAME.test(v.name)) continue;
    const used = (n: string): boolean => taken.has(n) || reserved.has(n);
    let base = derivedName(v.name);
    if (used(base) && KNOWN_EXT.test(v.name)) base = derivedName(v.name, true);
    let name = base;
    for (let i = 2; used(name); i += 1) name = `${base.slice(0, 62 - String(i).length).replace(/-+$/, '')}-${i}`;
    taken.add(name);
    out.set(key(v), { name, fileName: v.name });
  }
  return (v) => out.get(key(v));
}

export const NO_SOURCE_COMMENT = 'spec.source left out: export never reads a volume\'s contents; without a source the volume keeps what it holds';

export function exportVolumes(h: ExportHost, names: VolumeNames = volumeNames(h.volumes)): ExportedObject[] {
  const byPath = new Map(h.volumes.map((v) => [v.path, v]));
  return h.volumes.map((v) => {
    const named = names(v);
    const name = named?.name;
    const out: ExportedObject = {
      kind: 'Volume', name: name ?? v.name, file: `volume-${name ?? v.name}.yaml`, object: `volume ${v.pool}/${v.name}`, libvirtName: v.name, managed: 'unknown',
      comments: [], warnings: [], needs: [],
    };
    const pool = h.pools.find((p) => p.name === v.pool);
    if (!name) {
      out.warnings.push(v.format !== 'qcow2' && v.format !== 'raw' && v.format !== 'iso'
        ? `volume ${v.pool}/${v.name} has format ${v.format || '(unknown)'}: virtform manages qcow2 and raw volumes only`
        : `volume file ${v.pool}/${JSON.stringify(v.name)} is not a file name spec.fileName takes (letters, digits, ".", "_", "+", "-", not starting with "." or "-", at most 255 characters): ` +
          'virtform cannot manage it under this name (rename the file first)');
      return out;
    }
    if (pool?.type !== 'dir') {
      out.warnings.push(`volume ${v.pool}/${v.name} is in a ${pool?.type ?? 'unknown'} pool: virtform manages directory pools only`);
      return out;
    }
    // An ISO image is a raw file (libvirt probes it as format `iso`).
    const spec: Record<string, unknown> = { pool: v.pool, capacity: v.capacityBytes, format: v.format === 'iso' ? 'raw' : v.format, ...(named?.fileName ? { fileName: named.fileName } : {}) };
    if (v.backingPath) {
      const base = byPath.get(v.backingPath);
      const baseName = base ? names(base)?.name : undefined;
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
