/**
 * Extra devices (`spec.extraDevices`): XML fragments appended to a domain's `<devices>`, and the
 * devices of a domain definition that virtform does not model otherwise, read back.
 *
 * A fragment is parsed with fast-xml-parser (its validator first, for well-formedness with a line
 * and column), refused when it holds a DOCTYPE, a processing instruction, an entity other than the
 * predefined and numeric ones, or a namespaced name. Its canonical form is one line: attributes
 * sorted by name, whitespace-only text and comments dropped, text trimmed. That form goes into the
 * desired config (a reindented fragment is not a change) and into the domain XML virtform defines.
 *
 * Reading back: the `<devices>` children whose element is in {@link EXTRA_DEVICE_ELEMENTS}, minus
 * the ones virtform itself defines or libvirt adds on its own ({@link implicitDevice}): the PS/2
 * mouse and keyboard, the serial port 0, the guest agent channel. libvirt expands what it stores
 * (a PCI `<address>`, a serial's `<target type='isa-serial'>` and `<model>`, a running domain's
 * `<alias>` and pty path): a declared fragment matches a device read back when every attribute,
 * text and child element it declares is there with the same value ({@link fragmentMatches};
 * numbers compared as numbers, `slot='5'` = `slot='0x05'`), whatever libvirt added. The lists are
 * compared as multisets: libvirt writes devices grouped in its own order.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { LibvirtXmlError } from './types.js';
import { decodeEntities, escapeAttr, escapeText, type XElement, type XNode } from './xml-util.js';

/** A parsed element: name, attributes, child elements in order, trimmed text ('' when none). */
export interface Frag {
  name: string;
  attrs: Record<string, string>;
  children: Frag[];
  text: string;
}

/**
 * `<devices>` children a fragment may be: what virtform does not model and libvirt does not add on
 * its own for the domains virtform defines (x86_64 `pc`).
 */
export const EXTRA_DEVICE_ELEMENTS: readonly string[] = [
  'watchdog', 'rng', 'tpm', 'panic', 'sound', 'input', 'redirdev', 'smartcard', 'hub', 'vsock',
  'serial', 'parallel', 'channel', 'filesystem', 'hostdev',
];

/** `<devices>` children virtform models, or libvirt manages for what it models: refused as fragments. */
export const MODELLED_DEVICE_ELEMENTS: Readonly<Record<string, string>> = {
  disk: 'virtform models disks (spec.disks, spec.cloudInit)',
  interface: 'virtform models network interfaces (spec.nics)',
  graphics: 'virtform models graphics (spec.graphics)',
  video: 'libvirt adds the video device of spec.graphics',
  audio: 'libvirt adds audio backends itself',
  memballoon: 'virtform defines the virtio memory balloon itself',
  console: 'virtform defines the console (on the serial port 0)',
  controller: 'libvirt adds the controllers of the modelled disks and channels',
  emulator: 'libvirt chooses the emulator',
  memory: 'virtform models memory (spec.memory, spec.maxMemory)',
};

/** Elements that give the guest a piece of the host: refused unless the policy allows them (`extraDevices.hostElements`). */
export const HOST_DEVICE_ELEMENTS: readonly string[] = ['filesystem', 'hostdev', 'smartcard'];

/** Attributes that name a host path (on any element but the guest-side `target` and `address`). */
const PATH_ATTRS = new Set(['path', 'file', 'dir', 'dev', 'evdev', 'socket']);
const GUEST_SIDE = new Set(['target', 'address', 'alias']);
/** Elements whose text is a host path. */
const PATH_TEXT = new Set(['path', 'block', 'char', 'database']);
/** What an rng `random` backend may read without being a host path of its own. */
const RNG_SOURCES = new Set(['/dev/urandom', '/dev/random', '/dev/hwrng']);

/** The virtio-serial port name the QEMU guest agent listens on (as in domain.ts). */
const GUEST_AGENT_CHANNEL = 'org.qemu.guest_agent.0';

export type FragmentParse = { ok: true; frag: Frag } | { ok: false; message: string; line?: number; col?: number };

const orderedParser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: false,
  htmlEntities: false,
  ignoreDeclaration: false,
  ignorePiTags: false,
  commentPropName: '#comment',
});

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const BAD_ENTITY = /&(?!(?:lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)/;

/** Parse one fragment: exactly one element, well-formed, no DOCTYPE/PI/custom entity/namespace. */
export function parseFragment(xml: string): FragmentParse {
  if (/<!DOCTYPE/i.test(xml)) return { ok: false, message: 'a DOCTYPE is not allowed in a device fragment' };
  if (/<\?/.test(xml)) return { ok: false, message: 'processing instructions (<?...?>, also an XML declaration) are not allowed in a device fragment' };
  if (/<!\[CDATA\[/.test(xml)) return { ok: false, message: 'CDATA sections are not allowed in a device fragment' };
  const v = XMLValidator.validate(xml);
  if (v !== true) return { ok: false, message: `not well-formed XML: ${v.err.msg}`, line: v.err.line, col: v.err.col };
  let nodes: unknown[];
  try {
    nodes = orderedParser.parse(xml) as unknown[];
  } catch (e) {
    return { ok: false, message: `not well-formed XML: ${(e as Error).message}` };
  }
  const elements: Frag[] = [];
  for (const n of nodes) {
    const r = toFrag(n);
    if (r === undefined) continue;
    if (typeof r === 'string') return { ok: false, message: r };
    elements.push(r);
  }
  if (elements.length !== 1) {
    return { ok: false, message: elements.length === 0 ? 'no element: a fragment is one device element such as <watchdog model="i6300esb"/>' : `${elements.length} top-level elements (${elements.map((e) => `<${e.name}>`).join(', ')}): a fragment is exactly one device element; give each its own list item` };
  }
  try {
    canonicalFragment(elements[0]!); // a character XML cannot carry (say &#0;) is refused here, not when building
  } catch (e) {
    return { ok: false, message: e instanceof Error ? e.message : String(e) };
  }
  return { ok: true, frag: elements[0]! };
}

/** One node of the ordered parse → a Frag, undefined (comment, whitespace) or an error message. */
function toFrag(node: unknown): Frag | string | undefined {
  const o = node as Record<string, unknown>;
  const name = Object.keys(o).find((k) => k !== ':@');
  if (name === undefined || name === '#comment') return undefined;
  if (name === '#text') {
    const t = String(o['#text'] ?? '');
    return t.trim() === '' ? undefined : `text outside the device element: ${JSON.stringify(t.trim().slice(0, 40))}`;
  }
  if (name.includes(':')) return `namespaced element <${name}> is not allowed (namespaced extensions such as qemu:commandline reach QEMU directly; no policy allows them)`;
  if (!NAME.test(name)) return `bad element name <${name}>`;
  const attrs: Record<string, string> = {};
  for (const [k, raw] of Object.entries((o[':@'] ?? {}) as Record<string, unknown>)) {
    if (k === 'xmlns' || k.includes(':')) return `namespaced attribute ${k} on <${name}> is not allowed (no policy allows namespaces in a device fragment)`;
    const value = String(raw);
    if (BAD_ENTITY.test(value)) return `attribute ${k} of <${name}> uses an entity other than &lt; &gt; &amp; &quot; &apos; and character references`;
    attrs[k] = decodeEntities(value);
  }
  const children: Frag[] = [];
  let text = '';
  for (const c of (o[name] ?? []) as unknown[]) {
    const co = c as Record<string, unknown>;
    if ('#text' in co) {
      const t = String(co['#text'] ?? '');
      if (BAD_ENTITY.test(t)) return `text of <${name}> uses an entity other than &lt; &gt; &amp; &quot; &apos; and character references`;
      text += decodeEntities(t);
      continue;
    }
    const r = toFrag(c);
    if (r === undefined) continue;
    if (typeof r === 'string') return r;
    children.push(r);
  }
  text = text.trim();
  if (text !== '' && children.length > 0) return `<${name}> mixes text and elements`;
  return { name, attrs, children, text };
}

/** A Frag from the domain parser's tree (every child element an array, attributes `@_name`, text `#text`). */
export function fragFromNode(name: string, node: XNode): Frag {
  const attrs: Record<string, string> = {};
  const children: Frag[] = [];
  for (const [k, v] of Object.entries(node)) {
    if (k.startsWith('@_')) attrs[k.slice(2)] = String(v);
    else if (k !== '#text' && Array.isArray(v)) {
      for (const c of v) children.push(fragFromNode(k, c && typeof c === 'object' ? (c as XNode) : { '#text': String(c ?? '') }));
    }
  }
  const t = node['#text'];
  return { name, attrs, children, text: typeof t === 'string' ? t.trim() : '' };
}

/** One line: `<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>` (attributes sorted). */
export function canonicalFragment(f: Frag): string {
  // Single quotes as libvirt writes them: a plan shows the fragment in JSON without escaped quotes.
  const attrs = Object.keys(f.attrs).sort().map((k) => ` ${k}='${escapeAttr(f.attrs[k]!)}'`).join('');
  if (f.children.length === 0 && f.text === '') return `<${f.name}${attrs}/>`;
  const inner = f.children.length > 0 ? f.children.map(canonicalFragment).join('') : escapeText(f.text);
  return `<${f.name}${attrs}>${inner}</${f.name}>`;
}

/** Canonical form of a fragment known to be valid (from a config): throws otherwise. */
export function fragOf(xml: string): Frag {
  const r = parseFragment(xml);
  if (!r.ok) throw new LibvirtXmlError('invalid-input', `invalid device fragment: ${r.message}`);
  return r.frag;
}

/** The element tree of the domain XML builder. */
export function fragToElement(f: Frag): XElement {
  return {
    tag: f.name,
    attrs: { ...f.attrs },
    ...(f.children.length > 0 ? { children: f.children.map(fragToElement) } : f.text !== '' ? { text: f.text } : {}),
  };
}

/**
 * Why a device is one virtform defines itself or libvirt adds on its own (not an extra device),
 * else undefined: the PS/2 mouse and keyboard, the serial port 0, the guest agent channel.
 */
export function implicitDevice(f: Frag): string | undefined {
  if (f.name === 'input' && f.attrs.bus === 'ps2') return 'libvirt adds the PS/2 mouse and keyboard itself';
  if (f.name === 'serial' && f.children.find((c) => c.name === 'target')?.attrs.port === '0') return 'virtform defines the serial port 0 (with the console); give another target port';
  if (f.name === 'channel' && f.children.find((c) => c.name === 'target')?.attrs.name === GUEST_AGENT_CHANNEL) return 'the guest agent channel is spec.guestAgent';
  return undefined;
}

/** The extra devices of a domain's `<devices>` element, canonical, in libvirt's order. */
export function extraDevicesOf(devices: XNode | undefined): string[] {
  if (!devices) return [];
  const out: string[] = [];
  for (const name of EXTRA_DEVICE_ELEMENTS) {
    const v = devices[name];
    if (!Array.isArray(v)) continue;
    for (const n of v) {
      const f = fragFromNode(name, n && typeof n === 'object' ? (n as XNode) : {});
      if (implicitDevice(f) === undefined) out.push(canonicalFragment(f));
    }
  }
  return out;
}

const NUM = /^(?:0x[0-9a-fA-F]+|[0-9]+)$/;
function sameValue(a: string, b: string): boolean {
  if (a === b) return true;
  return NUM.test(a) && NUM.test(b) && Number(a) === Number(b);
}

/** Whether `have` (read back) has everything `want` (declared) declares: attributes, text, children. */
export function fragmentMatches(want: Frag, have: Frag): boolean {
  if (want.name !== have.name) return false;
  for (const [k, v] of Object.entries(want.attrs)) {
    const h = have.attrs[k];
    if (h === undefined || !sameValue(v, h)) return false;
  }
  if (want.text !== '' && !sameValue(want.text, have.text)) return false;
  return matchAll(want.children, have.children, true);
}

/**
 * Each of `want` matched to its own item of `have` (a bipartite matching by augmenting paths,
 * Kuhn's algorithm: polynomial, also for many alike devices); `extraAllowed`: `have` may hold more.
 */
function matchAll(want: readonly Frag[], have: readonly Frag[], extraAllowed: boolean): boolean {
  if (!extraAllowed && want.length !== have.length) return false;
  if (want.length > have.length) return false;
  const fits = want.map((w) => have.map((h) => fragmentMatches(w, h)));
  const owner: (number | undefined)[] = have.map(() => undefined);
  const augment = (i: number, seen: Set<number>): boolean => {
    for (let j = 0; j < have.length; j++) {
      if (!fits[i]![j] || seen.has(j)) continue;
      seen.add(j);
      if (owner[j] === undefined || augment(owner[j]!, seen)) {
        owner[j] = i;
        return true;
      }
    }
    return false;
  };
  return want.every((_, i) => augment(i, new Set()));
}

/** Declared fragments (canonical) against the devices read back (canonical): the same devices, each declared one matched by one read back. */
export function extraDevicesMatch(want: readonly string[], have: readonly string[]): boolean {
  if (want.length !== have.length) return false;
  return matchAll(want.map(fragOf), have.map(fragOf), false);
}

/** What a fragment reaches on the host: host-device elements, host paths, network chardevs. */
export interface HostReach {
  elements: string[];
  paths: { path: string; where: string }[];
  network: string[];
}

export function hostReachOf(f: Frag): HostReach {
  const out: HostReach = { elements: [], paths: [], network: [] };
  if (HOST_DEVICE_ELEMENTS.includes(f.name)) out.elements.push(f.name);
  const walk = (n: Frag, at: string): void => {
    const here = `${at}/${n.name}`;
    if (!GUEST_SIDE.has(n.name)) {
      for (const [k, v] of Object.entries(n.attrs)) if (PATH_ATTRS.has(k)) out.paths.push({ path: v, where: `${here}@${k}` });
    }
    // Element text that names a host file: a <path>, a hostdev's <block> and <char> device, a smartcard's NSS <database>.
    if (PATH_TEXT.has(n.name) && n.text !== '') out.paths.push({ path: n.text, where: here });
    if (n.name === 'backend' && (n.attrs.model ?? 'random') === 'random' && at.endsWith('/rng') && n.text !== '' && !RNG_SOURCES.has(n.text)) {
      out.paths.push({ path: n.text, where: here });
    }
    if ((n.attrs.type === 'tcp' || n.attrs.type === 'udp') && n.name !== 'address' && n.children.some((c) => c.name === 'source')) {
      out.network.push(`${here} type=${n.attrs.type}`);
    }
    for (const c of n.children) walk(c, here);
  };
  walk(f, '');
  return out;
}
