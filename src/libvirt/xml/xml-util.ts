/**
 * Minimal XML writer with strict escaping, and read helpers over fast-xml-parser's output.
 *
 * Writing: documents are built from a small element tree and serialized here rather than with
 * fast-xml-parser's XMLBuilder, because exact round-trips need more than the five predefined
 * entities: a carriage return must be written as `&#13;` (parsers normalize a raw CR to LF), and
 * tab/newline inside attribute values as `&#9;`/`&#10;` (attribute-value normalization turns raw
 * ones into spaces). Characters XML 1.0 cannot carry at all are rejected.
 *
 * Reading: fast-xml-parser runs with entity processing OFF (no DOCTYPE entity expansion) and every
 * element as an array; {@link decodeEntities} then decodes the predefined entities and numeric
 * character references in one pass, so `&amp;lt;` correctly becomes `&lt;` and not `<`.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { LibvirtXmlError } from './types.js';

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

export interface XElement {
  tag: string;
  attrs?: Record<string, string | number | undefined>;
  /** Text content (escaped on output). Mutually exclusive with children. */
  text?: string | number;
  children?: (XElement | undefined | false | null)[];
}

/** Characters not allowed in XML 1.0 documents, even as character references; lone surrogates. */
const INVALID_XML_CHARS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkChars(value: string, what: string): void {
  const m = INVALID_XML_CHARS.exec(value);
  if (m) {
    const code = m[0].charCodeAt(0).toString(16).padStart(4, '0');
    throw new LibvirtXmlError('invalid-input', `${what} contains a character XML cannot carry (U+${code})`);
  }
}

/** Escape a value for element text content. */
export function escapeText(value: string): string {
  checkChars(value, 'text');
  return value.replace(/[&<>"'\r]/g, (c) => ESCAPES[c]!);
}

/** Escape a value for a quoted attribute value (either quote style). */
export function escapeAttr(value: string): string {
  checkChars(value, 'attribute value');
  return value.replace(/[&<>"'\r\n\t]/g, (c) => ESCAPES[c]!);
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
  '\r': '&#13;',
  '\n': '&#10;',
  '\t': '&#9;',
};

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;

/** Serialize an element tree, indented by two spaces per level. */
export function renderXml(el: XElement, indent = 0): string {
  if (!NAME_RE.test(el.tag)) throw new LibvirtXmlError('invalid-input', `bad element name ${el.tag}`);
  const pad = '  '.repeat(indent);
  let open = `<${el.tag}`;
  for (const [k, v] of Object.entries(el.attrs ?? {})) {
    if (v === undefined) continue;
    if (!NAME_RE.test(k)) throw new LibvirtXmlError('invalid-input', `bad attribute name ${k}`);
    open += ` ${k}="${escapeAttr(String(v))}"`;
  }
  const kids = (el.children ?? []).filter((c): c is XElement => !!c);
  if (el.text !== undefined) {
    if (kids.length > 0) throw new LibvirtXmlError('invalid-input', `element ${el.tag} has text and children`);
    return `${pad}${open}>${escapeText(String(el.text))}</${el.tag}>\n`;
  }
  if (kids.length === 0) return `${pad}${open}/>\n`;
  return `${pad}${open}>\n${kids.map((k) => renderXml(k, indent + 1)).join('')}${pad}</${el.tag}>\n`;
}

/** Shorthand element constructor. */
export function el(
  tag: string,
  attrs?: Record<string, string | number | undefined>,
  content?: string | number | (XElement | undefined | false | null)[],
): XElement {
  const e: XElement = { tag };
  if (attrs) e.attrs = attrs;
  if (Array.isArray(content)) e.children = content;
  else if (content !== undefined) e.text = content;
  return e;
}

/** Assert a number is a non-negative (or positive) safe integer; returns it. */
export function requireInt(value: number, what: string, min = 0): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new LibvirtXmlError('invalid-input', `${what} must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

export function requireNonEmpty(value: string | undefined, what: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new LibvirtXmlError('invalid-input', `${what} must be a non-empty string`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/** A parsed element: attributes under `@_name`, text under `#text`, child elements as arrays. */
export type XNode = { [key: string]: unknown };

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  textNodeName: '#text',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: false,
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  alwaysCreateTextNode: true,
  isArray: (_name, _jpath, _leaf, isAttribute) => !isAttribute,
});

/** Decode predefined entities and numeric character references (one pass, no double decoding). */
export function decodeEntities(value: string): string {
  if (!value.includes('&')) return value;
  return value.replace(/&(?:#x([0-9a-fA-F]+)|#([0-9]+)|(lt|gt|amp|quot|apos));/g, (whole, hex, dec, name) => {
    if (name) return NAMED[name as string]!;
    const cp = hex !== undefined ? parseInt(hex as string, 16) : parseInt(dec as string, 10);
    if (!Number.isFinite(cp) || cp > 0x10ffff) return whole;
    return String.fromCodePoint(cp);
  });
}

const NAMED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** Decode the strings of a freshly parsed tree in place (the tree is ours: no copy, less garbage). */
function decodeTree(node: unknown): unknown {
  if (typeof node === 'string') return decodeEntities(node);
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) node[i] = decodeTree(node[i]);
    return node;
  }
  if (node && typeof node === 'object') {
    const o = node as XNode;
    for (const k of Object.keys(o)) o[k] = decodeTree(o[k]);
    return o;
  }
  return node;
}

/**
 * Parse an XML document and return its root element, which must be named `rootTag`.
 * Throws {@link LibvirtXmlError} for malformed XML or a different root.
 */
export function parseRoot(xml: string, rootTag: string): XNode {
  if (typeof xml !== 'string' || xml.trim() === '') {
    throw new LibvirtXmlError('malformed-xml', `empty ${rootTag} XML`);
  }
  // XML end-of-line handling: a raw CR (alone or before LF) reads as LF. libvirt writes a CR in
  // text content raw (not as &#13;), so a CR stored in e.g. a description reads back as LF, exactly
  // as libvirt itself reads its own config files; only a `&#13;` reference yields a CR.
  xml = xml.replace(/\r\n?/g, '\n');
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    throw new LibvirtXmlError('malformed-xml', `malformed ${rootTag} XML: ${valid.err.msg} (line ${valid.err.line})`);
  }
  const doc = decodeTree(parser.parse(xml)) as XNode;
  const roots = Object.keys(doc).filter((k) => !k.startsWith('#') && !k.startsWith('?'));
  if (roots.length !== 1 || roots[0] !== rootTag) {
    throw new LibvirtXmlError('unexpected-document', `expected a <${rootTag}> document, got <${roots.join(', ')}>`);
  }
  const root = asNode((doc[rootTag] as unknown[])[0]);
  return root;
}

function asNode(v: unknown): XNode {
  if (v && typeof v === 'object' && !Array.isArray(v)) return v as XNode;
  // An empty element with alwaysCreateTextNode may come back as '' : normalize to an empty node.
  return typeof v === 'string' ? { '#text': v } : {};
}

/** All child elements named `tag`. */
export function children(node: XNode | undefined, tag: string): XNode[] {
  const v = node?.[tag];
  return Array.isArray(v) ? v.map(asNode) : [];
}

/** The first child element named `tag`, if any. */
export function child(node: XNode | undefined, tag: string): XNode | undefined {
  return children(node, tag)[0];
}

/** Attribute value, if present. */
export function attr(node: XNode | undefined, name: string): string | undefined {
  const v = node?.[`@_${name}`];
  return typeof v === 'string' ? v : undefined;
}

/** The text content of an element ('' when empty). */
export function text(node: XNode | undefined): string {
  const v = node?.['#text'];
  return typeof v === 'string' ? v : '';
}

/** Text of the first child `tag`, or undefined when there is no such child. */
export function childText(node: XNode | undefined, tag: string): string | undefined {
  const c = child(node, tag);
  return c === undefined ? undefined : text(c);
}

/** Names of the child elements of a node (keys that are neither attributes nor text). */
export function childTags(node: XNode): string[] {
  return Object.keys(node).filter((k) => !k.startsWith('@_') && k !== '#text');
}

export function parseIntStrict(value: string | undefined, what: string): number {
  const s = (value ?? '').trim();
  if (!/^\d+$/.test(s)) throw new LibvirtXmlError('unexpected-document', `${what}: expected an integer, got '${value ?? ''}'`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new LibvirtXmlError('unexpected-document', `${what}: ${s} is too large`);
  return n;
}

/**
 * Scale factor (to bytes) of a libvirt unit: b/bytes; KB, MB, GB, TB, PB, EB (powers of 1000);
 * k/KiB, M/MiB, G/GiB, T/TiB, P/PiB, E/EiB (powers of 1024). Case-insensitive; undefined → `dflt`.
 */
export function unitFactor(unit: string | undefined, dflt: 'bytes' | 'KiB'): bigint {
  const u = (unit ?? dflt).trim();
  if (/^(b|bytes)$/i.test(u)) return 1n;
  const m = /^([kmgtpe])(ib|b)?$/i.exec(u);
  if (!m) throw new LibvirtXmlError('unexpected-document', `unknown unit '${u}'`);
  const power = BigInt('kmgtpe'.indexOf(m[1]!.toLowerCase()) + 1);
  const base = m[2] !== undefined && m[2].toLowerCase() === 'b' ? 1000n : 1024n;
  return base ** power;
}

/** Parse a `<capacity unit=…>N</capacity>`-style element into bytes. */
export function scaledBytes(node: XNode | undefined, what: string, dflt: 'bytes' | 'KiB'): bigint {
  const n = BigInt(parseIntStrict(text(node), what));
  return n * unitFactor(attr(node, 'unit'), dflt);
}

export function toSafeNumber(n: bigint, what: string): number {
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new LibvirtXmlError('unexpected-document', `${what} is too large`);
  return Number(n);
}
