/**
 * `virtform export` of networks: an isolated, NAT or bridge network → a Network manifest (mode,
 * cidr, the first DHCP range and its static hosts, bridge, autostart). What virtform's definition
 * of it would not carry over (IPv6, DNS, a domain name, a NAT port range other than libvirt's
 * default, an address that is not the CIDR's first, …) is a warning.
 */
import type { HostPort, HostSnapshot } from '../../ports.js';
import { parseNetworkXml } from '../../../libvirt/xml/network.js';
import { API_VERSION, RESOURCE_NAME, unlessGone, type ExportHost, type ExportedObject } from '../../core/export.js';
import { fragFromNode, canonicalFragment, type Frag } from '../../../libvirt/xml/extra-devices.js';
import { OWNER_NS } from '../../../libvirt/xml/marker.js';
import { parseRoot } from '../../../libvirt/xml/xml-util.js';
import { cidrHostAddress } from './index.js';

function toInt(ip: string): number {
  return ip.split('.').reduce((a, p) => a * 256 + Number(p), 0);
}
function toIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/** What of the network's XML a definition made from the manifest would not have (beyond uuid, bridge name and MAC libvirt keeps). */
function unexpressed(xml: string, mode: string): string[] {
  const root: Frag = fragFromNode('network', parseRoot(xml, 'network'));
  const out: string[] = [];
  let ipv4Seen = false;
  for (const c of root.children) {
    switch (c.name) {
      case 'name': case 'uuid': case 'mac': break;
      case 'metadata':
        for (const m of c.children) {
          if (!Object.values(m.attrs).includes(OWNER_NS)) out.push(`metadata ${canonicalFragment(m)} is dropped`);
        }
        break;
      case 'bridge': {
        const extra = Object.keys(c.attrs).filter((k) => !['name', 'stp', 'delay'].includes(k));
        if (extra.length || c.attrs.stp === 'off' || (c.attrs.delay ?? '0') !== '0') out.push(`${canonicalFragment(c)}: only the bridge name is kept`);
        break;
      }
      case 'forward': {
        const nat = c.children.filter((x) => x.name === 'nat');
        const defaultNat = nat.every((n) => n.children.every((p) => p.name === 'port' && p.attrs.start === '1024' && p.attrs.end === '65535') && Object.keys(n.attrs).length === 0);
        if (Object.keys(c.attrs).some((k) => k !== 'mode') || c.children.some((x) => x.name !== 'nat') || !defaultNat) out.push(`${canonicalFragment(c)}: only the forward mode is kept`);
        break;
      }
      case 'ip': {
        const v6 = c.attrs.family === 'ipv6' || (c.attrs.address ?? '').includes(':');
        if (v6 || ipv4Seen) {
          out.push(`${canonicalFragment(c)} is dropped (virtform models one IPv4 address)`);
          break;
        }
        ipv4Seen = true;
        const dhcp = c.children.find((x) => x.name === 'dhcp');
        const ranges = dhcp?.children.filter((x) => x.name === 'range') ?? [];
        if (ranges.length > 1) out.push(`DHCP ranges after the first are dropped: ${ranges.slice(1).map(canonicalFragment).join(', ')}`);
        for (const r of ranges) if (r.children.length || Object.keys(r.attrs).some((k) => k !== 'start' && k !== 'end')) out.push(`${canonicalFragment(r)}: only start and end are kept`);
        for (const x of dhcp?.children ?? []) {
          if (x.name === 'host' && Object.keys(x.attrs).some((k) => !['mac', 'ip', 'name'].includes(k))) out.push(`${canonicalFragment(x)}: only mac, ip and name are kept`);
          if (x.name === 'host' && x.attrs.mac === undefined) out.push(`${canonicalFragment(x)} is dropped (a static host needs a MAC)`);
          if (x.name !== 'host' && x.name !== 'range') out.push(`${canonicalFragment(x)} is dropped`);
        }
        for (const x of c.children) if (x.name !== 'dhcp') out.push(`${canonicalFragment(x)} is dropped`);
        if (Object.keys(c.attrs).some((k) => !['address', 'prefix', 'netmask', 'family'].includes(k))) out.push(`${canonicalFragment({ ...c, children: [] })}: only address and prefix are kept`);
        break;
      }
      default:
        if (!(mode === 'bridge' && c.name === 'forward')) out.push(`${canonicalFragment(c)} is dropped`);
    }
  }
  return out;
}

export function exportNetworks(h: ExportHost): ExportedObject[] {
  return h.networks.map((n) => {
    const out: ExportedObject = {
      kind: 'Network', name: n.name, file: `network-${n.name}.yaml`, object: `network ${n.name}`, libvirtName: n.name, managed: !!n.marker, comments: [], warnings: [], needs: [],
    };
    if (!RESOURCE_NAME.test(n.name)) {
      out.warnings.push(`network name ${JSON.stringify(n.name)} is not a resource name (1-63 lowercase letters, digits, "-"): virtform cannot manage it under that name`);
      return out;
    }
    if (n.mode !== 'isolated' && n.mode !== 'nat' && n.mode !== 'bridge') {
      out.warnings.push(`network ${n.name} has forward mode ${n.mode}: virtform manages isolated, nat and bridge networks only`);
      return out;
    }
    const spec: Record<string, unknown> = { mode: n.mode };
    if (n.mode === 'bridge') {
      if (n.bridge) spec.bridge = n.bridge;
    } else if (n.ipv4) {
      const size = 2 ** (32 - n.ipv4.prefix);
      const cidr = `${toIp(Math.floor(toInt(n.ipv4.address) / size) * size)}/${n.ipv4.prefix}`;
      if (n.ipv4.prefix < 8 || n.ipv4.prefix > 30) {
        out.warnings.push(`network ${n.name}: prefix /${n.ipv4.prefix} is outside what spec.cidr takes (/8../30)`);
        return out;
      }
      if (cidrHostAddress(cidr).address !== n.ipv4.address) {
        out.warnings.push(`network ${n.name}: the host address ${n.ipv4.address} is not the first address of ${cidr}, which virtform gives the host: adopting would replace the network`);
        return out;
      }
      spec.cidr = cidr;
      if (n.dhcp) {
        spec.dhcp = {
          start: n.dhcp.start, end: n.dhcp.end,
          ...(n.dhcp.hosts.length ? { hosts: n.dhcp.hosts.filter((x) => x.mac).map((x) => ({ mac: x.mac.toLowerCase(), ip: x.ip, ...(x.name ? { name: x.name } : {}) })) } : {}),
        };
      }
    }
    spec.autostart = n.autostart;
    out.warnings.push(...unexpressed(n.xml, n.mode).map((w) => `network ${n.name}: ${w}`));
    out.doc = { apiVersion: API_VERSION, kind: 'Network', metadata: { name: n.name, adopt: true }, spec };
    if (n.marker) out.markerHash = n.marker.specHash;
    return out;
  });
}

/** The host's networks with their inactive XML. */
export async function readNetworksForExport(host: HostPort, snapshot: HostSnapshot): Promise<ExportHost['networks']> {
  const out: ExportHost['networks'] = [];
  for (const o of snapshot.networks) {
    const xml = host.inactiveXml ? await unlessGone(() => host.inactiveXml!('network', o.name)) : null;
    if (xml !== null) {
      out.push({ ...parseNetworkXml(xml), active: o.active, autostart: o.autostart, xml });
      continue;
    }
    const d = await unlessGone(() => host.getNetwork(o.name));
    if (d) out.push({ ...d, xml: d.xml ?? `<network><name>${o.name}</name></network>` });
  }
  return out;
}
