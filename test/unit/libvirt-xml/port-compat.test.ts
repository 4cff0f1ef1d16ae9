/**
 * Definitions and details are declared once, in src/model/, and the XML layer and the
 * reconciler's port both re-export them. This test checks at run time that what the XML parsers
 * return, plus the list-call fields, is what the port's *Detail types describe.
 */
import { describe, expect, it } from 'vitest';
import type * as Ports from '../../../src/reconcile/ports.js';
import * as X from '../../../src/libvirt/xml/index.js';

const domainDef: Ports.DomainDef = {
  name: 'vm',
  type: 'kvm',
  vcpus: 1,
  memoryKiB: 65536,
  disks: [{ path: '/a.qcow2', format: 'qcow2', bus: 'virtio', target: 'vda', bootOrder: 1 }],
  nics: [{ network: 'n', mac: '52:54:00:00:00:01', model: 'virtio' }],
  marker: { kind: 'VirtualMachine', name: 'vm', specHash: 'h' },
};

describe('parsed XML and the port types', () => {
  it('parsed results spread into *Detail', () => {
    const parsed = X.parseDomainXml(X.buildDomainXml(domainDef));
    const detail: Ports.DomainDetail = { ...parsed, active: false, autostart: true };
    expect(detail.disks[0]?.bootOrder).toBe(1);
    expect(detail.marker).toEqual(domainDef.marker);

    const netDef: Ports.NetworkDef = { name: 'n', mode: 'isolated', marker: { kind: 'Network', name: 'n', specHash: 'h' } };
    const net: Ports.NetworkDetail = { ...X.parseNetworkXml(X.buildNetworkXml(netDef)), active: true, autostart: false };
    expect(net.marker).toEqual(netDef.marker);

    const poolDef: Ports.PoolDef = { name: 'p', path: '/p', marker: { kind: 'StoragePool', name: 'p', specHash: 'h' } };
    const pool: Ports.PoolDetail = { ...X.parsePoolXml(X.buildPoolXml(poolDef)), active: true, autostart: true };
    expect(pool.path).toBe('/p');

    const volDef: Ports.VolumeDef = { pool: 'p', name: 'v', capacityBytes: 1, format: 'raw' };
    const vol: Ports.VolumeDetail = X.parseVolumeXml(X.buildVolumeXml(volDef), 'p');
    expect(vol.pool).toBe('p');
  });
});
