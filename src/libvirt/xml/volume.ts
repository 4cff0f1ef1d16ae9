/**
 * Storage volume XML.
 *
 * No ownership marker: volume XML has no metadata/description element (libvirt 9.0). A volume's
 * owner follows from its pool and virtform's state database.
 *
 * `VolumeDef.pool` is not part of the document (the pool is chosen by the API call): the builder
 * ignores it. An imported image is uploaded after creation (the Volume kind), not given in XML.
 */
import { LibvirtXmlError, type ParsedVolume, type VolumeDef, type VolumeDetail } from './types.js';
import {
  attr,
  child,
  childText,
  el,
  parseRoot,
  renderXml,
  requireInt,
  requireNonEmpty,
  scaledBytes,
  toSafeNumber,
} from './xml-util.js';

const FORMATS = new Set(['qcow2', 'raw']);

export function buildVolumeXml(def: VolumeDef): string {
  requireNonEmpty(def.name, 'volume name');
  requireInt(def.capacityBytes, 'capacityBytes');
  if (!FORMATS.has(def.format)) throw new LibvirtXmlError('invalid-input', `unknown volume format ${String(def.format)}`);
  if (def.backing && !FORMATS.has(def.backing.format)) {
    throw new LibvirtXmlError('invalid-input', `unknown backing format ${String(def.backing.format)}`);
  }
  return renderXml(
    el('volume', { type: 'file' }, [
      el('name', undefined, def.name),
      el('capacity', { unit: 'bytes' }, def.capacityBytes),
      // Sparse: without an explicit allocation libvirt preallocates raw volumes in full.
      el('allocation', { unit: 'bytes' }, 0),
      el('target', undefined, [
        el('format', { type: def.format }),
        def.mode !== undefined && el('permissions', undefined, [el('mode', undefined, `0${requireInt(def.mode, 'mode').toString(8)}`)]),
        // qcow2 v3: libvirt 9.0 makes a clone (a volume with a backing store) qcow2 v2 (compat
        // 0.10) otherwise, and qemu-img cannot grow a v2 image over a larger backing file ("Failed
        // to zero out new clusters: Operation not supported"): found by the idempotence property test.
        def.format === 'qcow2' && el('compat', undefined, '1.1'),
      ]),
      def.backing &&
        el('backingStore', undefined, [
          el('path', undefined, requireNonEmpty(def.backing.path, 'backing path')),
          el('format', { type: def.backing.format }),
        ]),
    ]),
  );
}

/**
 * Read a volume document. Without `pool` returns {@link ParsedVolume}; with it, a full
 * `VolumeDetail`. Capacity is converted to bytes from libvirt's unit.
 */
export function parseVolumeXml(xml: string): ParsedVolume;
export function parseVolumeXml(xml: string, pool: string): VolumeDetail;
export function parseVolumeXml(xml: string, pool?: string): ParsedVolume | VolumeDetail {
  const root = parseRoot(xml, 'volume');
  const name = childText(root, 'name');
  if (!name) throw new LibvirtXmlError('unexpected-document', 'volume XML has no <name>');
  const target = child(root, 'target');
  const capacity = child(root, 'capacity');
  const out: ParsedVolume = {
    name,
    key: childText(root, 'key') ?? '',
    path: childText(target, 'path') ?? '',
    capacityBytes: capacity ? toSafeNumber(scaledBytes(capacity, 'volume capacity', 'bytes'), 'volume capacity') : 0,
    format: attr(child(target, 'format'), 'type') ?? '',
  };
  const backingPath = childText(child(root, 'backingStore'), 'path');
  if (backingPath) out.backingPath = backingPath;
  return pool === undefined ? out : { pool, ...out };
}
