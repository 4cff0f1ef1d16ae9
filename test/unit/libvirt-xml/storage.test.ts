import { describe, expect, it } from 'vitest';
import {
  buildPoolXml,
  buildVolumeXml,
  LibvirtXmlError,
  parsePoolXml,
  parseVolumeXml,
  type VolumeDef,
} from '../../../src/libvirt/xml/index.js';
import { fixture, HOSTILE } from './helpers.js';

describe('pool XML', () => {
  it('builds a dir pool that parses back; no marker is written (pool XML has no place for one)', () => {
    const xml = buildPoolXml({ name: 'p1', path: '/srv/vm pool/é', marker: { kind: 'StoragePool', name: 'p1', specHash: 'h' } });
    expect(xml).toMatch(/^<pool type="dir">/);
    expect(xml).not.toMatch(/metadata|owner/);
    expect(parsePoolXml(xml)).toEqual({ name: 'p1', uuid: '', type: 'dir', path: '/srv/vm pool/é' });
  });

  it('hostile name and path round-trip without injection', () => {
    const name = `${HOSTILE}</name><target><path>/etc</path></target>`;
    const xml = buildPoolXml({ name, path: `/x/${HOSTILE}`, marker: { kind: 'StoragePool', name: 'p', specHash: 'h' } });
    expect(xml.match(/<path>/g)).toHaveLength(1);
    const p = parsePoolXml(xml);
    expect(p.name).toBe(name);
    expect(p.path).toBe(`/x/${HOSTILE}`);
  });

  it('reads libvirt 9.0 pool-dumpxml (capacity, source, permissions present)', () => {
    const p = parsePoolXml(fixture('libvirt9-pool.xml'));
    expect(p).toEqual({
      name: 'vftest-xml-probepool',
      uuid: '62ca02a0-8cb5-4f0d-b0af-8040ffcdf6cf',
      type: 'dir',
      path: '/var/lib/virtform-test/vftest-xml-probepool',
    });
    expect(p.marker).toBeUndefined();
  });

  it('rejects empty names/paths and non-pool documents', () => {
    expect(() => buildPoolXml({ name: '', path: '/a', marker: { kind: 'StoragePool', name: 'p', specHash: 'h' } })).toThrow(LibvirtXmlError);
    expect(() => buildPoolXml({ name: 'a', path: '', marker: { kind: 'StoragePool', name: 'p', specHash: 'h' } })).toThrow(LibvirtXmlError);
    expect(() => parsePoolXml('<volume><name>v</name></volume>')).toThrow(LibvirtXmlError);
  });
});

describe('volume XML', () => {
  const base: VolumeDef = { pool: 'p1', name: 'disk.qcow2', capacityBytes: 10 * 1024 ** 3, format: 'qcow2' };

  it('builds name, capacity in bytes, sparse allocation, format', () => {
    const xml = buildVolumeXml(base);
    expect(xml).toContain('<capacity unit="bytes">10737418240</capacity>');
    expect(xml).toContain('<allocation unit="bytes">0</allocation>');
    expect(xml).toContain('<format type="qcow2"/>');
    expect(xml).not.toContain('backingStore');
    expect(parseVolumeXml(xml)).toEqual({ name: 'disk.qcow2', key: '', path: '', capacityBytes: 10 * 1024 ** 3, format: 'qcow2' });
  });

  it('copy-on-write clone: backingStore path and format', () => {
    const xml = buildVolumeXml({ ...base, backing: { path: `/pool/${HOSTILE}.raw`, format: 'raw' } });
    expect(xml).toMatch(/<backingStore>\s*<path>\/pool\/a&lt;b&amp;&quot;c&apos;&gt;\.raw<\/path>\s*<format type="raw"\/>/);
    expect(parseVolumeXml(xml).backingPath).toBe(`/pool/${HOSTILE}.raw`);
  });

  it('hostile name round-trips; the pool is not part of the XML', () => {
    const xml = buildVolumeXml({ ...base, name: `${HOSTILE}é😀`, format: 'raw', pool: 'POOLNAME' });
    expect(xml).not.toContain('POOLNAME');
    const p = parseVolumeXml(xml, 'px');
    expect(p).toMatchObject({ pool: 'px', name: `${HOSTILE}é😀`, format: 'raw' });
  });

  it('rejects bad capacity and formats', () => {
    expect(() => buildVolumeXml({ ...base, capacityBytes: -1 })).toThrow(LibvirtXmlError);
    expect(() => buildVolumeXml({ ...base, capacityBytes: 1.5 })).toThrow(LibvirtXmlError);
    expect(() => buildVolumeXml({ ...base, format: 'vmdk' as 'raw' })).toThrow(LibvirtXmlError);
    expect(() => buildVolumeXml({ ...base, backing: { path: '/a', format: 'iso' as 'raw' } })).toThrow(LibvirtXmlError);
  });

  it('reads libvirt 9.0 vol-dumpxml: escaped name/key/path, no backing store', () => {
    const path = "/var/lib/virtform-test/vftest-xml-probepool/vftest-xml-a&b'é.qcow2";
    expect(parseVolumeXml(fixture('libvirt9-vol.xml'), 'vftest-xml-probepool')).toEqual({
      pool: 'vftest-xml-probepool',
      name: "vftest-xml-a&b'é.qcow2",
      key: path,
      path,
      capacityBytes: 10485760,
      format: 'qcow2',
    });
  });

  it('reads libvirt 9.0 vol-dumpxml of a clone: backing path', () => {
    const v = parseVolumeXml(fixture('libvirt9-vol2.xml'));
    expect(v.capacityBytes).toBe(20971520);
    expect(v.backingPath).toBe("/var/lib/virtform-test/vftest-xml-probepool/vftest-xml-a&b'é.qcow2");
    expect(v.path).toBe('/var/lib/virtform-test/vftest-xml-probepool/vftest-xml-clone.qcow2');
  });

  it('capacity in other units is converted to bytes', () => {
    const v = parseVolumeXml("<volume><name>v</name><capacity unit='G'>2</capacity><target><path>/p</path></target></volume>");
    expect(v.capacityBytes).toBe(2 * 1024 ** 3);
    expect(v.format).toBe('');
    expect(parseVolumeXml("<volume><name>v</name><capacity>512</capacity></volume>").capacityBytes).toBe(512);
  });
});
