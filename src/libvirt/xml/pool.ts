/**
 * Storage pool XML (directory pools).
 *
 * No ownership marker: pool XML has no `<metadata>`, `<title>` or `<description>` on libvirt 9.0
 * (verified: a `<metadata>` element is silently dropped by pool-define and rejected by schema
 * validation). `PoolDef.marker` is therefore not written; ownership of pools must come from
 * virtform's own state database. `parsePoolXml` never returns a marker.
 */
import { LibvirtXmlError, type ParsedPool, type PoolDef } from './types.js';
import { attr, child, childText, el, parseRoot, renderXml, requireNonEmpty } from './xml-util.js';

export function buildPoolXml(def: PoolDef): string {
  return renderXml(
    el('pool', { type: 'dir' }, [
      el('name', undefined, requireNonEmpty(def.name, 'pool name')),
      def.uuid !== undefined && el('uuid', undefined, requireNonEmpty(def.uuid, 'uuid')),
      el('target', undefined, [el('path', undefined, requireNonEmpty(def.path, 'pool path'))]),
    ]),
  );
}

/** Read a pool document: name, uuid, type and target path. `marker` is always undefined. */
export function parsePoolXml(xml: string): ParsedPool {
  const root = parseRoot(xml, 'pool');
  const name = childText(root, 'name');
  if (!name) throw new LibvirtXmlError('unexpected-document', 'pool XML has no <name>');
  return {
    name,
    uuid: childText(root, 'uuid') ?? '',
    type: attr(root, 'type') ?? '',
    path: childText(child(root, 'target'), 'path') ?? '',
  };
}
