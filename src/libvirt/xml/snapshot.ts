/**
 * Domain snapshot XML (`<domainsnapshot>`): what virtform asks libvirt to take (an internal
 * snapshot: the disks, and the memory of a running domain), and what libvirt reports of one.
 */
import type { SnapshotDef, SnapshotDetail } from '../../model/definitions.js';
import { LibvirtXmlError } from './types.js';
import { attr, child, childText, children, el, parseIntStrict, parseRoot, renderXml, requireNonEmpty } from './xml-util.js';

/**
 * The document of virDomainSnapshotCreateXML. Disks and memory are left to libvirt's defaults:
 * internal for every writable qcow2 disk (read-only ones, the cloud-init seed, are left out), the
 * memory internal for a running domain. `memory: false` asks for none (libvirt then refuses a
 * running domain: an internal snapshot of a running VM must include its memory).
 */
export function buildSnapshotXml(def: SnapshotDef): string {
  requireNonEmpty(def.name, 'snapshot name');
  return renderXml(el('domainsnapshot', undefined, [
    el('name', undefined, def.name),
    def.description !== undefined && def.description !== '' && el('description', undefined, def.description),
    !def.memory && el('memory', { snapshot: 'no' }),
  ]));
}

/**
 * The domain definition a snapshot carries, as its own document: `<inactiveDomain>` (the
 * persistent definition of a domain that ran) when present, else `<domain>`. Cut out of the raw
 * text, so it compares byte for byte with the domain's inactive XML.
 */
function embeddedDomain(xml: string): string | undefined {
  const inactive = /<inactiveDomain[\s>][\s\S]*<\/inactiveDomain>/.exec(xml);
  if (inactive) return inactive[0].replace(/^<inactiveDomain/, '<domain').replace(/<\/inactiveDomain>$/, '</domain>');
  return /<domain[\s>][\s\S]*<\/domain>/.exec(xml)?.[0];
}

export function parseSnapshotXml(xml: string, domain: string): SnapshotDetail {
  const root = parseRoot(xml, 'domainsnapshot');
  const name = childText(root, 'name');
  if (!name) throw new LibvirtXmlError('unexpected-document', 'snapshot XML has no <name>');
  const description = childText(root, 'description');
  const disks = children(child(root, 'disks'), 'disk').map((d) => ({ target: attr(d, 'name') ?? '', snapshot: attr(d, 'snapshot') ?? '' }));
  const parent = childText(child(root, 'parent'), 'name');
  const domainXml = embeddedDomain(xml);
  return {
    domain, name,
    ...(description ? { description } : {}),
    creationTime: parseIntStrict(childText(root, 'creationTime'), 'snapshot creationTime'),
    state: childText(root, 'state') ?? '',
    memory: attr(child(root, 'memory'), 'snapshot') ?? 'no',
    disks,
    ...(parent ? { parent } : {}),
    ...(domainXml ? { domainXml } : {}),
  };
}
