/**
 * `virtform export` (issue 24): which of the host's objects are exported. The objects named
 * (by resource name or libvirt name, `Kind/NAME` when a name is taken by several kinds) and what
 * they need (a VM: its volumes and networks; a volume: its pool and backing volume); with `all`,
 * every object without virtform's owner marker (pools and volumes carry none: all of them but the
 * ones only managed objects need); with `includeManaged`, every object. Pure: the objects come
 * from the registry's `exportHostObjects`.
 */
import { isResourceKind, type ResourceKind } from '../model/kinds.js';
import type { ExportedObject } from './core/export.js';

export type { ExportedObject } from './core/export.js';

export interface ExportSelection {
  names: string[];
  all: boolean;
  includeManaged: boolean;
}

export type ExportSelected =
  | { ok: true; objects: ExportedObject[] }
  | { ok: false; errors: string[] };

const keyOf = (o: { kind: ResourceKind; name: string }): string => `${o.kind}/${o.name}`;

export function selectExports(objects: readonly ExportedObject[], sel: ExportSelection): ExportSelected {
  const byKey = new Map(objects.map((o) => [keyOf(o), o]));
  const errors: string[] = [];
  const chosen = new Set<string>();
  for (const raw of sel.names) {
    const slash = raw.indexOf('/');
    const kind = slash > 0 ? raw.slice(0, slash) : undefined;
    const name = slash > 0 ? raw.slice(slash + 1) : raw;
    if (kind !== undefined && !isResourceKind(kind)) {
      errors.push(`${raw}: ${kind} is not a kind`);
      continue;
    }
    const hits = objects.filter((o) => (kind === undefined || o.kind === kind) && (o.name === name || o.libvirtName === name));
    if (hits.length === 0) errors.push(`${raw}: no ${kind ?? 'pool, volume, network or domain'} of that name on the host`);
    else if (hits.length > 1 && new Set(hits.map((h) => h.kind)).size > 1) {
      errors.push(`${raw}: several objects have that name (${hits.map(keyOf).join(', ')}): name one as Kind/NAME`);
    } else for (const h of hits) chosen.add(keyOf(h));
  }
  if (errors.length) return { ok: false, errors };
  if (sel.all || sel.includeManaged) {
    // What only managed objects need is theirs too (their volumes, the pools of those).
    /** Everything the objects with `managed === which` need, transitively (their keys). */
    const neededBy = (which: boolean): Set<string> => {
      const seen = new Set<string>();
      const walk = (o: ExportedObject): void => {
        for (const n of o.needs) {
          const k = keyOf(n);
          if (seen.has(k)) continue;
          seen.add(k);
          const dep = byKey.get(k);
          if (dep) walk(dep);
        }
      };
      for (const o of objects) if (o.managed === which) walk(o);
      return seen;
    };
    const ofManaged = neededBy(true);
    const usedByForeign = neededBy(false);
    for (const o of objects) {
      const k = keyOf(o);
      if (sel.includeManaged || o.managed === false || (o.managed === 'unknown' && (!ofManaged.has(k) || usedByForeign.has(k)))) chosen.add(k);
    }
  }
  // What the chosen objects need comes with them.
  const queue = [...chosen];
  while (queue.length) {
    const o = byKey.get(queue.pop()!);
    if (!o) continue;
    for (const n of o.needs) {
      const k = keyOf(n);
      if (!byKey.has(k)) {
        if (!o.warnings.some((w) => w.includes(`needs ${k}`))) o.warnings.push(`needs ${k}, which is not on the host (or not readable): its manifest is not exported`);
        continue;
      }
      if (!chosen.has(k)) {
        chosen.add(k);
        queue.push(k);
      }
    }
  }
  return { ok: true, objects: objects.filter((o) => chosen.has(keyOf(o))) };
}
