/**
 * Virtual network XML.
 *
 * Modes: `isolated` (no `<forward>`), `nat` (`<forward mode='nat'/>`), `bridge`
 * (`<forward mode='bridge'/><bridge name=…/>`, no `<ip>`: libvirt does not manage addresses on a
 * host bridge it does not own). The owner marker goes into `<metadata>`: verified on libvirt
 * 9.0.0 that network `<metadata>` survives define, start, network-update and dumpxml (live and
 * --inactive). `<title>`/`<description>` are NOT supported for networks on 9.0 (silently dropped;
 * rejected by schema validation), so they are never written.
 */
import { markerMetadata, readMarker } from './marker.js';
import { LibvirtXmlError, type DhcpHost, type NetworkDef, type ParsedNetwork } from './types.js';
import {
  attr,
  child,
  childText,
  children,
  el,
  parseIntStrict,
  parseRoot,
  renderXml,
  requireInt,
  requireNonEmpty,
  type XElement,
  type XNode,
} from './xml-util.js';

function hostElement(h: DhcpHost, i: number): XElement {
  // Attribute order follows libvirt's own output (mac, name, ip).
  return el('host', {
    mac: requireNonEmpty(h.mac, `dhcp host ${i} mac`),
    name: h.name === undefined ? undefined : requireNonEmpty(h.name, `dhcp host ${i} name`),
    ip: requireNonEmpty(h.ip, `dhcp host ${i} ip`),
  });
}

/** `<host mac=… name=… ip=…/>`: the XML fragment virNetworkUpdate takes for an ip-dhcp-host section. */
export function buildDhcpHostXml(host: DhcpHost): string {
  return renderXml(hostElement(host, 0)).trimEnd();
}

export function buildNetworkXml(def: NetworkDef): string {
  requireNonEmpty(def.name, 'network name');
  let forward: XElement[] = [];
  switch (def.mode) {
    case 'isolated':
      break;
    case 'nat':
      forward = [el('forward', { mode: 'nat' })];
      break;
    case 'bridge':
      forward = [el('forward', { mode: 'bridge' }), el('bridge', { name: requireNonEmpty(def.bridge, 'bridge name') })];
      if (def.ipv4 || def.dhcp) {
        throw new LibvirtXmlError('invalid-input', `network ${def.name}: mode bridge cannot have ipv4/dhcp`);
      }
      break;
    default:
      throw new LibvirtXmlError('invalid-input', `unknown network mode ${String(def.mode)}`);
  }
  if (def.dhcp && !def.ipv4) throw new LibvirtXmlError('invalid-input', `network ${def.name}: dhcp needs ipv4`);

  let ip: XElement | undefined;
  if (def.ipv4) {
    requireInt(def.ipv4.prefix, 'ipv4 prefix');
    if (def.ipv4.prefix > 32) throw new LibvirtXmlError('invalid-input', `ipv4 prefix ${def.ipv4.prefix} > 32`);
    ip = el('ip', { address: requireNonEmpty(def.ipv4.address, 'ipv4 address'), prefix: def.ipv4.prefix }, [
      def.dhcp &&
        el('dhcp', undefined, [
          el('range', {
            start: requireNonEmpty(def.dhcp.start, 'dhcp start'),
            end: requireNonEmpty(def.dhcp.end, 'dhcp end'),
          }),
          ...def.dhcp.hosts.map(hostElement),
        ]),
    ]);
  }

  return renderXml(el('network', undefined, [
    el('name', undefined, def.name),
    def.uuid !== undefined && el('uuid', undefined, requireNonEmpty(def.uuid, 'uuid')),
    markerMetadata(def.marker), ...forward, ip]));
}

/** Prefix length of a dotted IPv4 netmask, or undefined when it is not a contiguous mask. */
function netmaskPrefix(mask: string): number | undefined {
  const parts = mask.split('.');
  if (parts.length !== 4) return undefined;
  let bits = '';
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    bits += Number(p).toString(2).padStart(8, '0');
  }
  return /^1*0*$/.test(bits) ? bits.indexOf('0') === -1 ? 32 : bits.indexOf('0') : undefined;
}

function isIpv4(ip: XNode): boolean {
  const family = attr(ip, 'family');
  if (family !== undefined) return family === 'ipv4';
  return !(attr(ip, 'address') ?? '').includes(':');
}

/** libvirt's classful default prefix of an IPv4 `<ip>` that has neither prefix nor netmask. */
function classfulPrefix(address: string): number | undefined {
  const first = Number(address.split('.')[0]);
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) return undefined;
  return first < 128 ? 8 : first < 192 ? 16 : first < 224 ? 24 : undefined;
}

/**
 * Read a network document. Returns {@link ParsedNetwork} (NetworkDetail without active/autostart).
 * The first IPv4 `<ip>` is reported (IPv6 ones are ignored). Forward modes other than nat/bridge
 * (route, open, passthrough, …) cannot be expressed in virtform's model: they are reported as
 * they are (`mode: 'route'`), never thrown, so one network changed outside virtform is a
 * difference of that network, not a failure of the whole read. An `<ip>` without prefix or
 * netmask takes libvirt's classful default.
 */
export function parseNetworkXml(xml: string): ParsedNetwork {
  const root = parseRoot(xml, 'network');
  const name = childText(root, 'name');
  if (!name) throw new LibvirtXmlError('unexpected-document', 'network XML has no <name>');
  const forward = child(root, 'forward');
  let mode: ParsedNetwork['mode'];
  if (!forward) mode = 'isolated';
  else {
    mode = attr(forward, 'mode') ?? 'nat'; // libvirt's default forward mode is nat
  }
  const out: ParsedNetwork = { name, uuid: childText(root, 'uuid') ?? '', mode };
  if (mode === 'bridge') {
    const br = attr(child(root, 'bridge'), 'name');
    if (br !== undefined) out.bridge = br;
  }

  const ip = children(root, 'ip').find(isIpv4);
  if (ip) {
    const address = attr(ip, 'address') ?? '';
    const prefixAttr = attr(ip, 'prefix');
    const netmask = attr(ip, 'netmask');
    let prefix: number | undefined;
    if (prefixAttr !== undefined) prefix = parseIntStrict(prefixAttr, 'ip prefix');
    else if (netmask !== undefined) prefix = netmaskPrefix(netmask);
    else prefix = classfulPrefix(address);
    if (prefix === undefined) throw new LibvirtXmlError('unexpected-document', `network ${name}: <ip> without prefix/netmask`);
    out.ipv4 = { address, prefix };
    const dhcp = child(ip, 'dhcp');
    if (dhcp) {
      const range = child(dhcp, 'range');
      const hosts: DhcpHost[] = children(dhcp, 'host').map((h) => {
        const host: DhcpHost = { mac: attr(h, 'mac') ?? '', ip: attr(h, 'ip') ?? '' };
        const hn = attr(h, 'name');
        if (hn !== undefined) host.name = hn;
        return host;
      });
      out.dhcp = { start: attr(range, 'start') ?? '', end: attr(range, 'end') ?? '', hosts };
    }
  }
  const marker = readMarker(root);
  if (marker) out.marker = marker;
  return out;
}
