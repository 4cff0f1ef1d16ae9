import { describe, expect, it } from 'vitest';
import { buildNetworkXml, buildPoolXml, parseNetworkXml, parsePoolXml } from '../../../src/libvirt/xml/index.js';

const marker = { kind: 'Network' as const, name: 'n', specHash: 'h' };
const UUID = '3bc073bf-7549-4f3b-8207-dda61083fa9c';

describe('redefinition keeps the UUID', () => {
  it('network XML carries the given uuid and omits it when none is given', () => {
    expect(parseNetworkXml(buildNetworkXml({ name: 'n', uuid: UUID, mode: 'isolated', marker })).uuid).toBe(UUID);
    expect(buildNetworkXml({ name: 'n', mode: 'isolated', marker })).not.toContain('<uuid>');
  });
  it('pool XML carries the given uuid and omits it when none is given', () => {
    const pm = { kind: 'StoragePool' as const, name: 'p', specHash: 'h' };
    expect(parsePoolXml(buildPoolXml({ name: 'p', uuid: UUID, path: '/srv/p', marker: pm })).uuid).toBe(UUID);
    expect(buildPoolXml({ name: 'p', path: '/srv/p', marker: pm })).not.toContain('<uuid>');
  });
});
