import { describe, expect, it } from 'vitest';
import {
  buildDhcpHostXml,
  buildNetworkXml,
  LibvirtXmlError,
  parseNetworkXml,
  type NetworkDef,
} from '../../../src/libvirt/xml/index.js';
import { fixture, HOSTILE } from './helpers.js';

const marker = { kind: 'Network' as const, name: 'net1', specHash: 'sha256:n' };

function def(over: Partial<NetworkDef> = {}): NetworkDef {
  return {
    name: 'net1',
    mode: 'isolated',
    ipv4: { address: '10.20.30.1', prefix: 24 },
    dhcp: { start: '10.20.30.100', end: '10.20.30.200', hosts: [] },
    marker,
    ...over,
  };
}

function roundTrip(d: NetworkDef) {
  const p = parseNetworkXml(buildNetworkXml(d));
  const expected: Record<string, unknown> = { name: d.name, uuid: '', mode: d.mode, marker: d.marker };
  if (d.bridge !== undefined) expected.bridge = d.bridge;
  if (d.ipv4) expected.ipv4 = d.ipv4;
  if (d.dhcp) expected.dhcp = d.dhcp;
  expect(p).toEqual(expected);
  return p;
}

describe('buildNetworkXml / parseNetworkXml', () => {
  it('isolated: no <forward>', () => {
    const xml = buildNetworkXml(def());
    expect(xml).not.toMatch(/<forward/);
    roundTrip(def());
  });

  it('nat: <forward mode="nat"/>', () => {
    const xml = buildNetworkXml(def({ mode: 'nat' }));
    expect(xml).toMatch(/<forward mode="nat"\/>/);
    roundTrip(def({ mode: 'nat' }));
  });

  it('bridge: forward mode bridge and the host bridge, no <ip>', () => {
    const d = def({ mode: 'bridge', bridge: 'br0', ipv4: undefined, dhcp: undefined });
    delete d.ipv4;
    delete d.dhcp;
    const xml = buildNetworkXml(d);
    expect(xml).toMatch(/<forward mode="bridge"\/>/);
    expect(xml).toMatch(/<bridge name="br0"\/>/);
    expect(xml).not.toMatch(/<ip/);
    roundTrip(d);
  });

  it('no ip at all, ip without dhcp', () => {
    const noIp = def();
    delete noIp.ipv4;
    delete noIp.dhcp;
    roundTrip(noIp);
    const noDhcp = def();
    delete noDhcp.dhcp;
    roundTrip(noDhcp);
  });

  it('one and several dhcp hosts, with and without names', () => {
    roundTrip(def({ dhcp: { start: '10.20.30.100', end: '10.20.30.200', hosts: [{ mac: '52:54:00:00:00:01', ip: '10.20.30.5' }] } }));
    roundTrip(
      def({
        dhcp: {
          start: '10.20.30.100',
          end: '10.20.30.200',
          hosts: [
            { mac: '52:54:00:00:00:01', ip: '10.20.30.5', name: 'a' },
            { mac: '52:54:00:00:00:02', ip: '10.20.30.6' },
            { mac: '52:54:00:00:00:03', ip: '10.20.30.7', name: 'c' },
          ],
        },
      }),
    );
  });

  it('hostile values round-trip and cannot inject elements', () => {
    const d = def({
      name: `${HOSTILE}</name><forward mode='nat'/>`,
      dhcp: { start: HOSTILE, end: 'é😀', hosts: [{ mac: `${HOSTILE}"/><host mac="x`, ip: HOSTILE, name: `n ${HOSTILE}` }] },
      marker: { kind: 'Network', name: HOSTILE, specHash: `${HOSTILE}\t\n\r` },
    });
    const xml = buildNetworkXml(d);
    expect(xml).not.toMatch(/<forward/);
    expect(xml.match(/<host /g)).toHaveLength(1);
    roundTrip(d);
  });

  it('rejects inconsistent definitions', () => {
    expect(() => buildNetworkXml(def({ mode: 'bridge' }))).toThrow(LibvirtXmlError); // no bridge name
    expect(() => buildNetworkXml(def({ mode: 'bridge', bridge: 'br0' }))).toThrow(/cannot have ipv4/);
    const noIp = def();
    delete noIp.ipv4;
    expect(() => buildNetworkXml(noIp)).toThrow(/dhcp needs ipv4/);
    expect(() => buildNetworkXml(def({ ipv4: { address: '10.0.0.1', prefix: 33 } }))).toThrow(LibvirtXmlError);
    expect(() => buildNetworkXml(def({ mode: 'route' as 'nat' }))).toThrow(/unknown network mode/);
  });
});

describe('buildDhcpHostXml', () => {
  it('builds a single <host> element, escaped', () => {
    expect(buildDhcpHostXml({ mac: '52:54:00:00:00:01', ip: '10.0.0.5', name: 'web' })).toBe(
      '<host mac="52:54:00:00:00:01" name="web" ip="10.0.0.5"/>',
    );
    expect(buildDhcpHostXml({ mac: '52:54:00:00:00:01', ip: '10.0.0.5' })).toBe('<host mac="52:54:00:00:00:01" ip="10.0.0.5"/>');
    const hostile = buildDhcpHostXml({ mac: 'm', ip: 'i', name: `${HOSTILE}"/><x a="` });
    expect(hostile).not.toMatch(/<x /);
    // wrapped in a network, it parses back to the same host
    const p = parseNetworkXml(
      `<network><name>n</name><ip address='10.0.0.1' prefix='24'><dhcp><range start='a' end='b'/>${hostile}</dhcp></ip></network>`,
    );
    expect(p.dhcp?.hosts).toEqual([{ mac: 'm', ip: 'i', name: `${HOSTILE}"/><x a="` }]);
  });
});

describe('parseNetworkXml on libvirt output shapes', () => {
  it('reads libvirt 9.0 net-dumpxml of a built isolated network (marker kept in <metadata>)', () => {
    expect(parseNetworkXml(fixture('libvirt9-net.xml'))).toEqual({
      name: 'vftest-xml-probenet',
      uuid: 'fa1e7b4f-b9e3-47c3-a2bd-c0ba7509bb7d',
      mode: 'isolated', // libvirt adds <bridge name='virbr1'>: not reported for isolated networks
      ipv4: { address: '10.251.78.1', prefix: 24 },
      dhcp: {
        start: '10.251.78.10',
        end: '10.251.78.99',
        hosts: [
          { mac: '52:54:00:AA:00:01', name: 'h1', ip: '10.251.78.11' },
          { mac: '52:54:00:aa:00:02', ip: '10.251.78.12' },
        ],
      },
      marker: { kind: 'Network', name: `a<b&"c'>é😀`, specHash: 'sha256:1' },
    });
  });

  it("the default network shape: forward nat with nat ports, netmask instead of prefix, no metadata", () => {
    const xml = `<network>
  <name>default</name>
  <uuid>0b5a5bd6-aaaa-bbbb-cccc-000000000001</uuid>
  <forward mode='nat'>
    <nat>
      <port start='1024' end='65535'/>
    </nat>
  </forward>
  <bridge name='virbr0' stp='on' delay='0'/>
  <mac address='52:54:00:0a:0b:0c'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>`;
    expect(parseNetworkXml(xml)).toEqual({
      name: 'default',
      uuid: '0b5a5bd6-aaaa-bbbb-cccc-000000000001',
      mode: 'nat',
      ipv4: { address: '192.168.122.1', prefix: 24 },
      dhcp: { start: '192.168.122.2', end: '192.168.122.254', hosts: [] },
    });
  });

  it('IPv6 before IPv4: reports the IPv4 <ip>; <forward> without mode is nat', () => {
    const xml = `<network><name>v6</name><forward/><ip family='ipv6' address='fd00::1' prefix='64'/>
      <ip address='10.9.0.1' netmask='255.255.0.0'/></network>`;
    const p = parseNetworkXml(xml);
    expect(p.mode).toBe('nat');
    expect(p.ipv4).toEqual({ address: '10.9.0.1', prefix: 16 });
    expect(p.dhcp).toBeUndefined();
  });

  it('forward modes virtform does not model are reported as they are; non-network documents are errors', () => {
    expect(parseNetworkXml(`<network><name>r</name><forward mode='route'/></network>`).mode).toBe('route');
    expect(parseNetworkXml(`<network><name>o</name><forward mode='open'/><ip address='10.1.2.1'/></network>`))
      .toMatchObject({ mode: 'open', ipv4: { address: '10.1.2.1', prefix: 8 } });
    expect(parseNetworkXml(`<network><name>c</name><ip address='192.168.5.1'/></network>`).ipv4).toEqual({ address: '192.168.5.1', prefix: 24 });
    expect(() => parseNetworkXml('<pool><name>p</name></pool>')).toThrow(LibvirtXmlError);
  });
});
