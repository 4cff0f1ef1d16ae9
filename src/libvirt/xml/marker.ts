/**
 * The ownership marker: `<vf:owner xmlns:vf="https://virtform.dev/xmlns/owner/v1" kind=… name=…
 * spec-hash=…/>` inside a document's `<metadata>` element (domains and, on libvirt 9.0, networks).
 *
 * Reading matches on the namespace URI, never on the prefix: libvirt may store the element under
 * another prefix (e.g. when set through virDomainSetMetadata with a different key).
 */
import { LibvirtXmlError, RESOURCE_KINDS, type OwnerMarker, type ResourceKind } from './types.js';
import { attr, childTags, children, el, renderXml, requireNonEmpty, type XElement, type XNode } from './xml-util.js';

export const OWNER_NS = 'https://virtform.dev/xmlns/owner/v1';
export const OWNER_PREFIX = 'vf';

/** `<metadata><vf:owner …/></metadata>` for a marker. */
export function markerMetadata(marker: OwnerMarker): XElement {
  if (!RESOURCE_KINDS.includes(marker.kind)) {
    throw new LibvirtXmlError('invalid-input', `invalid marker kind ${String(marker.kind)}`);
  }
  return el('metadata', undefined, [
    el(`${OWNER_PREFIX}:owner`, {
      [`xmlns:${OWNER_PREFIX}`]: OWNER_NS,
      kind: marker.kind,
      name: requireNonEmpty(marker.name, 'marker name'),
      'spec-hash': requireNonEmpty(marker.specHash, 'marker specHash'),
    }),
  ]);
}

/**
 * The marker element for virDomainSetMetadata (`<owner kind=… name=… spec-hash=…/>`, no
 * namespace: libvirt puts it in the namespace of the call's URI {@link OWNER_NS} under the key
 * {@link OWNER_PREFIX}).
 */
export function markerElementXml(marker: OwnerMarker): string {
  const owner = markerMetadata(marker).children![0] as XElement;
  const attrs = { ...owner.attrs };
  delete attrs[`xmlns:${OWNER_PREFIX}`];
  return renderXml({ tag: 'owner', attrs }).trim();
}

/**
 * A definition's XML with the owner marker added (into its `<metadata>`, made after `<uuid>` or
 * `<name>` when there is none), everything else as it is: a network adopted as it is (libvirt 9.0
 * has no virNetworkSetMetadata, so its definition is written again with the marker in it).
 */
export function withMarker(xml: string, marker: OwnerMarker): string {
  const owner = renderXml(markerMetadata(marker).children![0] as XElement).trim();
  if (/<metadata\s*\/>/.test(xml)) return xml.replace(/<metadata\s*\/>/, `<metadata>${owner}</metadata>`);
  if (/<\/metadata>/.test(xml)) return xml.replace(/<\/metadata>/, `${owner}</metadata>`);
  const at = /<\/uuid>/.test(xml) ? '</uuid>' : '</name>';
  const i = xml.indexOf(at);
  if (i < 0) throw new LibvirtXmlError('unexpected-document', 'a definition without <name>');
  return `${xml.slice(0, i + at.length)}\n  <metadata>${owner}</metadata>${xml.slice(i + at.length)}`;
}

/** Namespace URI bound to `prefix` ('' = default namespace) on the element or its ancestors. */
function nsOf(prefix: string, chain: XNode[]): string | undefined {
  const decl = prefix === '' ? 'xmlns' : `xmlns:${prefix}`;
  for (const node of chain) {
    const v = attr(node, decl);
    if (v !== undefined) return v;
  }
  return undefined;
}

/**
 * Find virtform's owner marker in the `<metadata>` children of `root`. Returns undefined when
 * absent or incomplete (an element in our namespace without a valid kind/name/spec-hash).
 */
export function readMarker(root: XNode): OwnerMarker | undefined {
  for (const metadata of children(root, 'metadata')) {
    for (const tag of childTags(metadata)) {
      const colon = tag.indexOf(':');
      const prefix = colon >= 0 ? tag.slice(0, colon) : '';
      const local = colon >= 0 ? tag.slice(colon + 1) : tag;
      if (local !== 'owner') continue;
      for (const node of children(metadata, tag)) {
        if (nsOf(prefix, [node, metadata, root]) !== OWNER_NS) continue;
        const kind = attr(node, 'kind');
        const name = attr(node, 'name');
        const specHash = attr(node, 'spec-hash');
        if (!kind || !RESOURCE_KINDS.includes(kind as ResourceKind) || !name || !specHash) continue;
        return { kind: kind as ResourceKind, name, specHash };
      }
    }
  }
  return undefined;
}
