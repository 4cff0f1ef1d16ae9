/** Shared manifest objects for the diff/plan tables (plain objects, see test/support/observed.ts). */
export const POOL = { name: 'p', path: '/pools/p', autostart: true };
export const POOL_Q = { name: 'q', path: '/pools/q', autostart: true };
export const BASE = { name: 'base', pool: 'p', capacity: '64MiB', format: 'qcow2' };
export const ROOT = { name: 'root', pool: 'p', capacity: '64MiB', format: 'qcow2', backingVolume: 'base' };
export const DATA = { name: 'data', pool: 'p', capacity: '32MiB', format: 'raw' };
export const HOST1 = { mac: '52:54:00:AA:00:01', ip: '10.231.0.11' };
export const HOST2 = { mac: '52:54:00:aa:00:02', ip: '10.231.0.12', name: 'two' };
export const NET = {
  name: 'net', mode: 'isolated', cidr: '10.231.0.0/24', autostart: false,
  dhcp: { start: '10.231.0.100', end: '10.231.0.199', hosts: [HOST1] },
};
export const VM1 = {
  name: 'vm1', vcpus: 1, memory: '64MiB', state: 'running',
  disks: [{ volume: 'root', bus: 'virtio', boot: 1 }, { volume: 'data' }],
  nics: [{ network: 'net', mac: '52:54:00:aa:00:01' }],
};
export const VM2 = { name: 'vm2', vcpus: 1, memory: '64MiB', state: 'stopped', disks: [], nics: [{ network: 'net' }] };

export const MiB = 1024 * 1024;

/** The whole lab: 1 pool, 3 volumes (root a clone of base), 1 network, 2 VMs. */
export function lab(over: Partial<Record<'pool' | 'base' | 'root' | 'data' | 'net' | 'vm1' | 'vm2', Record<string, unknown> | null>> = {}) {
  const pick = <T extends Record<string, unknown>>(k: keyof typeof over, base: T): (T & { name: string })[] =>
    over[k] === null ? [] : [{ ...base, ...(over[k] ?? {}) } as T & { name: string }];
  return {
    pools: pick('pool', POOL),
    volumes: [...pick('base', BASE), ...pick('root', ROOT), ...pick('data', DATA)],
    networks: pick('net', NET),
    vms: [...pick('vm1', VM1), ...pick('vm2', VM2)],
  };
}
