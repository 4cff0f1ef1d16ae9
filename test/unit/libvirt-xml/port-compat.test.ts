/**
 * The XML layer's types must be structurally compatible with the reconciler's ports
 * (src/reconcile/ports.ts) without importing them. The `checks` tuple and the annotated
 * assignments below only compile when the types match: this file must be type-checked (the
 * project tsconfig covers src/ only; run tsc over it with a config that includes test/). At run
 * time the test verifies that spreading a parsed document plus list-call fields gives a detail.
 */
import { describe, expect, it } from 'vitest';
import type * as Ports from '../../../src/reconcile/ports.js';
import * as X from '../../../src/libvirt/xml/index.js';

// Definitions: the reconciler's objects go straight into the builders, and ours into theirs.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const checks: [
  Same<X.PoolDef, Ports.PoolDef>,
  Same<X.VolumeDef, Ports.VolumeDef>,
  Same<X.NetworkDef, Ports.NetworkDef>,
  Same<X.DomainDef, Ports.DomainDef>,
  Same<X.DomainDetail, Ports.DomainDetail>,
  Same<X.NetworkDetail, Ports.NetworkDetail>,
  Same<X.PoolDetail, Ports.PoolDetail>,
  Same<X.VolumeDetail, Ports.VolumeDetail>,
  Same<X.OwnerMarker, Ports.OwnerMarker>,
  Same<X.DhcpHost, Ports.DhcpHost>,
] = [true, true, true, true, true, true, true, true, true, true];

const domainDef: Ports.DomainDef = {
  name: 'vm',
  type: 'kvm',
  vcpus: 1,
  memoryKiB: 65536,
  disks: [{ path: '/a.qcow2', format: 'qcow2', bus: 'virtio', target: 'vda', bootOrder: 1 }],
  nics: [{ network: 'n', mac: '52:54:00:00:00:01', model: 'virtio' }],
  marker: { kind: 'VirtualMachine', name: 'vm', specHash: 'h' },
};

describe('structural compatibility with src/reconcile/ports.ts', () => {
  it('type checks hold (compile time) and parsed results spread into *Detail', () => {
    void checks;
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
