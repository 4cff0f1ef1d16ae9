/**
 * Exact comparison of two libvirt XML documents (a definition now against its baseline, the one
 * libvirt gave back after virtform's last write), naming each differing element by its path.
 *
 * Each element is flattened to `path → signature` (its attributes, sorted, and its trimmed text;
 * not its children). Paths leave out the root element and name siblings by what identifies them
 * in libvirt's XML, never by position where libvirt gives them an identity:
 * `devices/disk[target=vda]/readonly`, `devices/interface[mac=52:54:00:…]/link`,
 * `devices/controller[type=usb,index=0]`, `ip/dhcp/host[mac=…]`; other repeated siblings by their
 * position (`ip/dhcp/range`, `ip/dhcp/range[2]`). A subtree added or removed is named once, at
 * its top (`devices/watchdog added`, not each child).
 */
import { hash } from 'node:crypto';
import { XMLParser } from 'fast-xml-parser';

export type XmlChange = 'added' | 'removed' | 'changed';

export interface XmlDifference {
  /** Path of the element below the root (`devices/watchdog`). */
  path: string;
  /** `added`: on the host now, not in the baseline; `removed`: the other way round. */
  change: XmlChange;
  /** The element's attributes and text in the baseline (removed, changed). */
  before?: string;
  /** The element's attributes and text now (added, changed). */
  after?: string;
}

/** sha256 (hex) of a document's raw bytes: equal hashes need no parse. */
export function xmlSha256(xml: string): string {
  return hash('sha256', xml);
}

type Ordered = Record<string, unknown>;

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: false,
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  commentPropName: '#comment',
});

const ATTRS = ':@';

function tagOf(n: Ordered): string | undefined {
  for (const k of Object.keys(n)) if (k !== ATTRS && k !== '#text' && k !== '#comment') return k;
  return undefined;
}

function attrsOf(n: Ordered): Record<string, string> {
  return (n[ATTRS] as Record<string, string> | undefined) ?? {};
}

function childrenOf(n: Ordered, tag: string): Ordered[] {
  return (n[tag] as Ordered[] | undefined) ?? [];
}

/** What identifies an element among its siblings in libvirt's XML, if anything. */
function identity(tag: string, n: Ordered): string | undefined {
  const kids = childrenOf(n, tag);
  const a = attrsOf(n);
  for (const k of kids) {
    const t = tagOf(k);
    const ka = attrsOf(k);
    if (t === 'target' && tag !== 'os') {
      const v = ka.dev ?? ka.name ?? ka.dir;
      if (v !== undefined) return `target=${v}`;
    }
    if (t === 'mac' && ka.address !== undefined) return `mac=${ka.address.toLowerCase()}`;
  }
  if (tag === 'host' && a.mac !== undefined) return `mac=${a.mac.toLowerCase()}`;
  if (a.index !== undefined && a.type !== undefined) return `type=${a.type},index=${a.index}`;
  return undefined;
}

function signature(tag: string, n: Ordered): string {
  const a = attrsOf(n);
  const parts = Object.keys(a).sort().map((k) => `${k}='${a[k]}'`);
  const text = childrenOf(n, tag).filter((k) => '#text' in k).map((k) => String(k['#text'])).join('').trim();
  return text ? `${parts.join(' ')}${parts.length ? ' ' : ''}${JSON.stringify(text)}` : parts.join(' ');
}

/** `path → signature` (and the parent's path, '' for top-level elements) of every element below the root. */
export function flattenXml(xml: string): Map<string, { sig: string; parent: string }> {
  const doc = parser.parse(xml) as Ordered[];
  const root = doc.find((n) => tagOf(n) !== undefined);
  const out = new Map<string, { sig: string; parent: string }>();
  if (!root) return out;
  const walk = (node: Ordered, tag: string, prefix: string): void => {
    const kids = childrenOf(node, tag).filter((k) => tagOf(k) !== undefined);
    const named: string[] = kids.map((k) => {
      const t = tagOf(k)!;
      const id = identity(t, k);
      return id ? `${t}[${id}]` : t;
    });
    const seen = new Map<string, number>();
    kids.forEach((k, i) => {
      let name = named[i]!;
      const n = (seen.get(name) ?? 0) + 1;
      seen.set(name, n);
      if (n > 1) name = `${name}[${n}]`;
      const path = prefix ? `${prefix}/${name}` : name;
      const t = tagOf(k)!;
      out.set(path, { sig: signature(t, k), parent: prefix });
      walk(k, t, path);
    });
  };
  walk(root, tagOf(root)!, '');
  return out;
}

/**
 * The differences of `now` from `baseline`, each named once at the top of what differs.
 * `ignore`: paths (and their subtrees) left out of the comparison, as regular expressions.
 */
export function xmlDifferences(baseline: string, now: string, ignore: readonly RegExp[] = []): XmlDifference[] {
  const a = flattenXml(baseline);
  const b = flattenXml(now);
  const ignored = (p: string): boolean => ignore.some((re) => re.test(p));
  const out: XmlDifference[] = [];
  // A subtree is named at its top: an element whose parent is missing on the other side is left out.
  const topOf = (parent: string, other: Map<string, unknown>): boolean => parent === '' || other.has(parent);
  for (const [p, { sig, parent }] of b) {
    if (ignored(p)) continue;
    const before = a.get(p);
    if (!before) {
      if (topOf(parent, a)) out.push({ path: p, change: 'added', after: sig });
    } else if (before.sig !== sig) {
      out.push({ path: p, change: 'changed', before: before.sig, after: sig });
    }
  }
  for (const [p, { sig, parent }] of a) {
    if (ignored(p) || b.has(p)) continue;
    if (topOf(parent, b)) out.push({ path: p, change: 'removed', before: sig });
  }
  return out.sort((x, y) => x.path.localeCompare(y.path));
}
