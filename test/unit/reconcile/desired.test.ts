import { describe, expect, it } from 'vitest';
import { canonicalJson, hashConfig } from '../../../src/reconcile/desired.js';
import { cidrHostAddress } from '../../../src/reconcile/kinds/network/index.js';
import { diskTarget } from '../../../src/reconcile/kinds/vm/index.js';
import { volumeFileName } from '../../../src/reconcile/kinds/volume/index.js';

describe('normalization helpers', () => {
  it('names disk targets per bus family like libvirt does', () => {
    expect([0, 1, 25, 26, 27].map((i) => diskTarget('virtio', i))).toEqual(['vda', 'vdb', 'vdz', 'vdaa', 'vdab']);
    expect(diskTarget('sata', 0)).toBe('sda');
    expect(diskTarget('scsi', 2)).toBe('sdc');
    expect(diskTarget('ide', 1)).toBe('hdb');
  });
  it('gives the host side of a network the first usable address', () => {
    expect(cidrHostAddress('10.200.0.0/24')).toEqual({ address: '10.200.0.1', prefix: 24 });
    expect(cidrHostAddress('192.0.2.64/26')).toEqual({ address: '192.0.2.65', prefix: 26 });
    expect(cidrHostAddress('172.16.0.0/12')).toEqual({ address: '172.16.0.1', prefix: 12 });
  });
  it('hashes configs independently of key order, and differently when a value changes', () => {
    expect(canonicalJson({ b: 1, a: { d: 2, c: undefined } })).toBe('{"a":{"d":2},"b":1}');
    expect(hashConfig({ a: 1, b: [1, 2] })).toBe(hashConfig({ b: [1, 2], a: 1 }));
    expect(hashConfig({ a: 1, b: [1, 2] })).not.toBe(hashConfig({ a: 1, b: [2, 1] }));
  });
  it('names volume files by format', () => {
    expect(volumeFileName('root', 'qcow2')).toBe('root.qcow2');
    expect(volumeFileName('data', 'raw')).toBe('data.img');
  });
});
