/**
 * In-memory implementation of the reconciler's HostPort, for unit tests of diff, plan and apply.
 * Behaves like libvirt where the reconciler relies on it: define overwrites (same UUID required
 * for an existing name), start/stop are idempotent, a volume can't be created twice, deleting a
 * pool with volumes fails. Failures can be injected per operation and resource name.
 *
 * Domains behave like libvirt's QEMU driver under TCG: a NIC defined without a MAC gets a new
 * random 52:54:00 MAC at every define; a running domain keeps the definition it was started
 * with (`live`) and gets a new domain id at every start; vCPUs can be plugged live up to the
 * maximum but not unplugged (QEMU refuses the device_del); memory and description change live
 * within the maximum; a volume attached to a running domain cannot be resized with the volume
 * API (qemu-img cannot take the write lock), only through the domain (block resize).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  HostError, type HostErrorCode,
  type DhcpHost, type DomainDef, type HostDefinitions, type DomainLifecycleEvent, type HostCallInfo, type DomainDetail, type HostIdentity, type HostPort, type HostSnapshot, type NetworkDef,
  type NetworkDetail, type ObservedVolume, type PoolDef, type PoolDetail, type VolumeDef, type VolumeDetail,
} from '../../src/reconcile/ports.js';

interface Obj<D> {
  uuid: string; def: D; active: boolean; autostart: boolean; id?: number;
  /** Domains: the definition the running domain was started with (changed by live calls). */
  live?: D;
  /** Domains: the `<memballoon model>` of the persistent definition (virtform writes virtio). */
  balloon?: string;
}

export function randomMac(): string {
  return `52:54:00:${[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
}

export class FakeHost implements HostPort {
  pools = new Map<string, Obj<PoolDef>>();
  volumes = new Map<string, Map<string, VolumeDetail>>();
  networks = new Map<string, Obj<NetworkDef>>();
  domains = new Map<string, Obj<DomainDef>>();
  calls: string[] = [];
  private mutations = 0;
  private nextDomainId = 1;
  /** `op:name` → remaining failures (Infinity = always). op is the HostPort method name. */
  failures = new Map<string, number>();
  type: 'kvm' | 'qemu' = 'qemu';
  /** What hostIdentity() reports. */
  identity: HostIdentity = { uri: 'test:///fake', hostname: 'fake-host', uuid: '00000000-0000-4000-8000-00000000fa4e', driver: 'test' };

  /** `op:name` → the HostError code of the injected failure (default operation-failed). */
  failureCodes = new Map<string, HostErrorCode>();

  failNext(op: keyof HostPort, name: string, times = 1, code: HostErrorCode = 'operation-failed'): void {
    this.failures.set(`${op}:${name}`, times);
    this.failureCodes.set(`${op}:${name}`, code);
  }

  private call(op: string, name: string, mutating: boolean): void {
    this.calls.push(`${op}:${name}`);
    this.observer?.({ procedure: op, ms: 0, mutating });
    if (mutating) this.mutations += 1;
    const key = `${op}:${name}`;
    const left = this.failures.get(key);
    if (left !== undefined && left > 0) {
      this.failures.set(key, left - 1);
      throw new HostError(this.failureCodes.get(key) ?? 'operation-failed', `injected failure: ${op} ${name}`);
    }
  }

  mutationCount(): number {
    return this.mutations;
  }
  async domainType(): Promise<'kvm' | 'qemu'> {
    return this.type;
  }
  async hostIdentity(): Promise<HostIdentity> {
    this.call('hostIdentity', '*', false);
    return { ...this.identity };
  }
  async snapshot(): Promise<HostSnapshot> {
    this.call('snapshot', '*', false);
    const list = <D>(m: Map<string, Obj<D>>) =>
      [...m].map(([name, o]) => ({ name, uuid: o.uuid, active: o.active, autostart: o.autostart }));
    const domains = [...this.domains].map(([name, o]) => ({ name, uuid: o.uuid, id: o.active ? (o.id ?? 1) : -1, active: o.active, autostart: o.autostart }));
    return { pools: list(this.pools), networks: list(this.networks), domains };
  }

  /** Like the adapter: one read per listed object, objects gone since listing left out. */
  readonly definitions: HostDefinitions = {
    domains: async (list) => this.describe('describeDomain', list, (n) => this.domainDetail(n)),
    networks: async (list) => this.describe('describeNetwork', list, (n) => this.networkDetail(n)),
    pools: async (list) => this.describe('describePool', list, (n) => this.poolDetail(n)),
    volumes: async (list) => {
      const out = new Map<string, VolumeDetail>();
      for (const v of list) {
        this.call('describeVolume', v.name, false);
        const d = this.volumes.get(v.pool)?.get(v.name);
        if (d) out.set(v.key, d);
      }
      return out;
    },
  };
  private describe<D>(op: string, list: { name: string }[], get: (name: string) => D | null): Map<string, D> {
    const out = new Map<string, D>();
    for (const o of list) {
      this.call(op, o.name, false);
      const d = get(o.name);
      if (d) out.set(o.name, d);
    }
    return out;
  }
  async listVolumes(pool: string): Promise<ObservedVolume[]> {
    this.call('listVolumes', pool, false);
    if (!this.pools.get(pool)?.active) throw new HostError('invalid', `pool ${pool} is not active`);
    return [...(this.volumes.get(pool)?.values() ?? [])].map((v) => ({ pool, name: v.name, key: v.key }));
  }

  async getPool(name: string): Promise<PoolDetail | null> {
    this.call('getPool', name, false);
    return this.poolDetail(name);
  }
  private poolDetail(name: string): PoolDetail | null {
    const p = this.pools.get(name);
    return p ? { name, uuid: p.uuid, active: p.active, autostart: p.autostart, path: p.def.path, marker: p.def.marker } : null;
  }
  async getNetwork(name: string): Promise<NetworkDetail | null> {
    this.call('getNetwork', name, false);
    return this.networkDetail(name);
  }
  private networkDetail(name: string): NetworkDetail | null {
    const n = this.networks.get(name);
    if (!n) return null;
    const { marker, ...rest } = n.def;
    return { ...rest, uuid: n.uuid, active: n.active, autostart: n.autostart, marker };
  }
  async getDomain(name: string): Promise<DomainDetail | null> {
    this.call('getDomain', name, false);
    return this.domainDetail(name);
  }
  async getRunningDomain(name: string): Promise<(DomainDetail & { id: number }) | null> {
    this.call('getRunningDomain', name, false);
    const d = this.domains.get(name);
    if (!d?.active || !d.live) return null;
    return { ...this.domainDetail(name, d.live)!, id: d.id ?? 1 };
  }
  private domainDetail(name: string, def?: DomainDef): DomainDetail | null {
    const o = this.domains.get(name);
    if (!o) return null;
    const d = def ? { ...o, def } : o;
    return {
      name, uuid: d.uuid, active: d.active, autostart: d.autostart,
      vcpus: d.def.vcpus, maxVcpus: d.def.maxVcpus ?? d.def.vcpus,
      memoryKiB: d.def.memoryKiB, maxMemoryKiB: d.def.maxMemoryKiB ?? d.def.memoryKiB, balloon: d.balloon ?? 'virtio',
      // libvirt does not keep an empty description
      ...(d.def.description ? { description: d.def.description } : {}),
      disks: d.def.disks.map((x) => ({ path: x.path, target: x.target, bus: x.bus, format: x.format, ...(x.bootOrder !== undefined ? { bootOrder: x.bootOrder } : {}) })),
      nics: d.def.nics.map((x) => ({ network: x.network, mac: x.mac ?? '', model: x.model })), marker: d.def.marker,
    };
  }
  async getVolume(pool: string, name: string): Promise<VolumeDetail | null> {
    this.call('getVolume', name, false);
    return this.volumes.get(pool)?.get(name) ?? null;
  }

  private define<D extends { name: string; uuid?: string }>(m: Map<string, Obj<D>>, def: D): Obj<D> {
    const existing = m.get(def.name);
    if (existing && def.uuid && existing.uuid !== def.uuid)
      throw new HostError('already-exists', `${def.name} already exists with uuid ${existing.uuid}`);
    if (existing && !def.uuid) throw new HostError('already-exists', `${def.name} already exists with uuid ${existing.uuid}`);
    const obj = existing ?? { uuid: def.uuid ?? randomUUID(), def, active: false, autostart: false };
    obj.def = def;
    m.set(def.name, obj);
    return obj;
  }
  private need<D>(m: Map<string, Obj<D>>, name: string, what: string): Obj<D> {
    const o = m.get(name);
    if (!o) throw new HostError('not-found', `${what} ${name} not found`);
    return o;
  }

  async definePool(def: PoolDef): Promise<void> {
    this.call('definePool', def.name, true);
    this.define(this.pools, def);
    if (!this.volumes.has(def.name)) this.volumes.set(def.name, new Map());
  }
  async startPool(name: string): Promise<void> {
    this.call('startPool', name, true);
    this.need(this.pools, name, 'pool').active = true;
  }
  async setPoolAutostart(name: string, autostart: boolean): Promise<void> {
    this.call('setPoolAutostart', name, true);
    this.need(this.pools, name, 'pool').autostart = autostart;
  }
  async deletePool(name: string): Promise<void> {
    this.call('deletePool', name, true);
    if (!this.pools.has(name)) return;
    if ((this.volumes.get(name)?.size ?? 0) > 0) throw new HostError('operation-failed', `pool ${name} is not empty`);
    this.pools.delete(name);
    this.volumes.delete(name);
  }

  async createVolume(def: VolumeDef): Promise<VolumeDetail> {
    this.call('createVolume', def.name, true);
    const pool = this.need(this.pools, def.pool, 'pool');
    if (!pool.active) throw new HostError('invalid', `pool ${def.pool} is not active`);
    const vols = this.volumes.get(def.pool)!;
    if (vols.has(def.name)) throw new HostError('already-exists', `volume ${def.name} already exists`);
    if (def.backing && ![...this.volumes.values()].some((m) => [...m.values()].some((v) => v.path === def.backing!.path)))
      throw new HostError('not-found', `backing store ${def.backing.path} does not exist`);
    const path = `${pool.def.path}/${def.name}`;
    const v: VolumeDetail = {
      pool: def.pool, name: def.name, key: path, path, capacityBytes: def.capacityBytes, format: def.format,
      ...(def.backing ? { backingPath: def.backing.path } : {}),
    };
    vols.set(def.name, v);
    return v;
  }
  async resizeVolume(pool: string, name: string, capacityBytes: number): Promise<void> {
    this.call('resizeVolume', name, true);
    const v = this.volumes.get(pool)?.get(name);
    if (!v) throw new HostError('not-found', `volume ${name} not found`);
    if ([...this.domains.values()].some((d) => d.active && d.live?.disks.some((x) => x.path === v.path)))
      throw new HostError('operation-failed', `qemu-img: Could not open '${v.path}': Failed to get "write" lock`);
    v.capacityBytes = capacityBytes;
  }
  async deleteVolume(pool: string, name: string): Promise<void> {
    this.call('deleteVolume', name, true);
    this.volumes.get(pool)?.delete(name);
  }

  async defineNetwork(def: NetworkDef): Promise<void> {
    this.call('defineNetwork', def.name, true);
    this.define(this.networks, def);
  }
  async startNetwork(name: string): Promise<void> {
    this.call('startNetwork', name, true);
    this.need(this.networks, name, 'network').active = true;
  }
  async stopNetwork(name: string): Promise<void> {
    this.call('stopNetwork', name, true);
    const n = this.networks.get(name);
    if (n) n.active = false;
  }
  async setNetworkAutostart(name: string, autostart: boolean): Promise<void> {
    this.call('setNetworkAutostart', name, true);
    this.need(this.networks, name, 'network').autostart = autostart;
  }
  async updateNetworkDhcpHost(name: string, op: 'add' | 'delete', host: DhcpHost): Promise<void> {
    this.call('updateNetworkDhcpHost', name, true);
    const n = this.need(this.networks, name, 'network');
    const dhcp = n.def.dhcp;
    if (!dhcp) throw new HostError('invalid', `network ${name} has no DHCP`);
    const others = dhcp.hosts.filter((h) => h.mac !== host.mac);
    n.def = { ...n.def, dhcp: { ...dhcp, hosts: op === 'add' ? [...others, host] : others } };
  }
  async undefineNetwork(name: string): Promise<void> {
    this.call('undefineNetwork', name, true);
    this.networks.delete(name);
  }

  async defineDomain(def: DomainDef): Promise<{ uuid: string }> {
    this.call('defineDomain', def.name, true);
    // libvirt: a NIC without a MAC gets a new generated one at every define
    const withMacs = { ...def, nics: def.nics.map((n) => (n.mac ? n : { ...n, mac: randomMac() })) };
    const o = this.define(this.domains, withMacs);
    o.balloon = 'virtio';
    return { uuid: o.uuid };
  }
  private running(name: string): Obj<DomainDef> & { live: DomainDef } {
    const d = this.need(this.domains, name, 'domain');
    if (!d.active || !d.live) throw new HostError('operation-failed', `domain ${name} is not running`);
    return d as Obj<DomainDef> & { live: DomainDef };
  }
  async setDomainVcpus(name: string, vcpus: number): Promise<void> {
    this.call('setDomainVcpus', name, true);
    const d = this.need(this.domains, name, 'domain');
    if (d.active && d.live) {
      const max = d.live.maxVcpus ?? d.live.vcpus;
      if (vcpus > max) throw new HostError('invalid', `requested vcpus is greater than max allowable vcpus for the live domain: ${vcpus} > ${max}`);
      if (vcpus < d.live.vcpus) throw new HostError('operation-failed', "unable to execute QEMU command 'device_del': acpi: device unplug request for not supported device type: qemu64-x86_64-cpu");
      d.live = { ...d.live, vcpus };
    }
    d.def = { ...d.def, vcpus };
  }
  async setDomainMemory(name: string, memoryKiB: number): Promise<void> {
    this.call('setDomainMemory', name, true);
    const d = this.need(this.domains, name, 'domain');
    const max = (d.live ?? d.def).maxMemoryKiB ?? (d.live ?? d.def).memoryKiB;
    if (memoryKiB > max) throw new HostError('invalid', 'cannot set memory higher than max memory');
    if (d.active && d.live) d.live = { ...d.live, memoryKiB };
    d.def = { ...d.def, memoryKiB };
  }
  async setDomainDescription(name: string, description: string | undefined): Promise<void> {
    this.call('setDomainDescription', name, true);
    const d = this.need(this.domains, name, 'domain');
    if (d.active && d.live) d.live = { ...d.live, description };
    d.def = { ...d.def, description };
  }
  async resizeDomainDisk(name: string, path: string, capacityBytes: number): Promise<void> {
    this.call('resizeDomainDisk', name, true);
    const d = this.running(name);
    if (!d.live.disks.some((x) => x.path === path)) throw new HostError('invalid', `disk '${path}' was not found in the domain config`);
    for (const m of this.volumes.values()) for (const v of m.values()) if (v.path === path) v.capacityBytes = capacityBytes;
  }
  async startDomain(name: string): Promise<void> {
    this.call('startDomain', name, true);
    const d = this.need(this.domains, name, 'domain');
    for (const disk of d.def.disks) {
      if (![...this.volumes.values()].some((m) => [...m.values()].some((v) => v.path === disk.path)))
        throw new HostError('operation-failed', `cannot access storage file ${disk.path}`);
    }
    for (const nic of d.def.nics) {
      if (!this.networks.get(nic.network)?.active) throw new HostError('operation-failed', `network ${nic.network} is not active`);
    }
    if (d.active) return;
    d.active = true;
    d.id = this.nextDomainId++;
    d.live = d.def;
  }
  async stopDomain(name: string): Promise<void> {
    this.call('stopDomain', name, true);
    const d = this.domains.get(name);
    if (d) {
      d.active = false;
      d.live = undefined;
    }
  }
  async setDomainAutostart(name: string, autostart: boolean): Promise<void> {
    this.call('setDomainAutostart', name, true);
    this.need(this.domains, name, 'domain').autostart = autostart;
  }
  async undefineDomain(name: string): Promise<void> {
    this.call('undefineDomain', name, true);
    const d = this.domains.get(name);
    if (d?.active) throw new HostError('operation-failed', `domain ${name} is running`);
    this.domains.delete(name);
  }
  private eventSubscribers = new Set<(e: DomainLifecycleEvent) => void>();
  private disconnectHandlers: ((err: Error) => void)[] = [];
  private observer: ((info: HostCallInfo) => void) | undefined;
  async subscribeDomainEvents(cb: (e: DomainLifecycleEvent) => void): Promise<() => Promise<void>> {
    this.eventSubscribers.add(cb);
    return async () => {
      this.eventSubscribers.delete(cb);
    };
  }
  onDisconnect(cb: (err: Error) => void): void {
    this.disconnectHandlers.push(cb);
  }
  setCallObserver(cb: ((info: HostCallInfo) => void) | undefined): void {
    this.observer = cb;
  }
  /** Test helper: emit a lifecycle event as libvirt would. */
  emitDomainEvent(name: string, event: string): void {
    const uuid = this.domains.get(name)?.uuid ?? '00000000-0000-0000-0000-000000000000';
    for (const cb of this.eventSubscribers) cb({ name, uuid, event, detail: 0 });
  }
  /** Test helper: simulate the daemon going away. */
  disconnect(err = new Error('connection closed')): void {
    const handlers = this.disconnectHandlers;
    this.disconnectHandlers = [];
    for (const cb of handlers) cb(err);
  }
  async close(): Promise<void> {}
}
