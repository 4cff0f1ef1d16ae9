/**
 * In-memory implementation of the reconciler's HostPort, for unit tests of diff, plan and apply.
 *
 * It behaves like libvirtd (qemu:///system) as seen through the real adapter; the HostPort
 * contract suite (test/support/host-contract.ts) runs against both and keeps them in step:
 * - define overwrites an object of the same name and UUID; the same name with another (or no)
 *   UUID fails with `operation-failed` ("already exists with uuid"); so does a pool on a path
 *   another pool uses;
 * - an active object runs the definition it was started with (`live`, one mechanism for every
 *   kind): redefining it changes its persistent definition (`def`) only; getPool/getNetwork and
 *   getRunningDomain show the running definition, getDomain and `definitions` the persistent one,
 *   until the object is stopped;
 * - start/stop are idempotent; undefining an active network or a running domain leaves it running
 *   as a transient object that vanishes when stopped (and whose autostart cannot be set);
 * - a volume can't be created twice (`already-exists`), not in an inactive pool, not with a
 *   missing backing file; volumes can grow, not shrink (`invalid`); the volumes of an inactive
 *   pool can't be listed or looked up (`operation-failed`);
 * - deleting a pool undefines it even with volumes in it: the files stay and reappear when a pool
 *   is defined on the same directory again;
 * - DHCP host entries follow libvirt's network-update rules (no duplicate MAC, name or IP);
 * - NICs without a MAC get a new random 52:54:00 MAC at every define (libvirt's QEMU driver);
 * - domains behave like the QEMU driver under TCG: a new domain id at every start; vCPUs can be
 *   plugged live up to the maximum but not unplugged (QEMU refuses the device_del); memory and
 *   description change live (and in the persistent definition) within the maximum; a volume
 *   attached to a running domain cannot be resized with the volume API (qemu-img cannot take the
 *   write lock), only through the domain (block resize);
 * - domain capabilities are this machine's (libvirt 9.0, QEMU 7.2) for `type` (`domainCaps` overrides,
 *   null = none, as the test driver): no host-passthrough under TCG. A definition without `<cpu>`
 *   reads back as libvirt writes it (custom qemu64); the guest agent channel is there unless
 *   `guestAgent: false`; a running domain's graphics has a port. Start refuses what libvirtd
 *   refuses (a CPU mode or graphics type not offered, an unknown custom model);
 * - with `lifecycleEvents = true`, the domain lifecycle events the daemon sends for the fake's own
 *   calls (defined, undefined, started, stopped) are delivered asynchronously to subscribers.
 *   Off by default: the watch tests count runs, and the controller schedules a run for every
 *   event of an owned domain, including the ones its own apply causes (see the contract report);
 * - `definitions` reads the PERSISTENT definitions (libvirt's INACTIVE XML), one call per object:
 *   after a redefinition of an active object it shows the new definition while getNetwork,
 *   getPool and getRunningDomain still show the running one.
 * - addresses: `leases` holds each network's DHCP leases (a test hands them out with `giveLease`,
 *   or `guestDhcp = true` makes every started domain take one per NIC on a network with a DHCP
 *   range, like a guest that asks at once); leases outlive the domain, as dnsmasq's do. The
 *   interface-address query answers from them (`lease`), from `agentAddresses` (`agent`: a domain
 *   not in it has no guest-agent channel) and from `arp` (MAC → IP); like libvirt, only interfaces
 *   with an address are listed, and a domain that is not running is `unavailable`.
 * Failures can be injected per operation and resource name (with the HostError code to throw).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  HostError, MutationRefusedError, type HostErrorCode, type MutationGuard,
  type DhcpLease, type DomainAddresses, type InterfaceAddresses, type InterfaceAddressSource, type ObservedDomain, type ObservedNetwork,
  type DhcpHost, type DomainCapabilities, type DomainDef, type DomainLifecycleEvent, type HostCallInfo, type DomainDetail, type HostDefinitions, type HostIdentity, type HostPort,
  type HostSnapshot, type NetworkDef, type NodeInfo, type ObservedPool, type PoolInfo,
  type NetworkDetail, type ObservedVolume, type PoolDef, type PoolDetail, type VolumeDef, type VolumeDetail, type VolumeHole,
  type SnapshotDef, type SnapshotDetail,
} from '../../src/reconcile/ports.js';
// hot-plug (issue 24; helper restart)
import type { HotplugDevice } from '../../src/reconcile/ports.js';

interface Obj<D> {
  uuid: string;
  /** The persistent definition (what `virsh dumpxml --inactive` shows). */
  def: D;
  active: boolean;
  autostart: boolean;
  /**
   * The definition the running object uses: set when it starts, changed by live calls, not by a
   * redefinition; dropped when it stops. (An object a test marks active without starting it runs
   * `def` until its first redefinition.)
   */
  live?: D;
  /** Undefined while running: gone when stopped. */
  transient?: boolean;
  /** Domains: libvirt's domain id while running (a new one at every start). */
  id?: number;
  /** Domains: the `<memballoon model>` of the definition (virtform writes virtio). */
  balloon?: string;
}

/**
 * Domain capabilities as this machine's libvirt 9.0 / QEMU 7.2 reports them (`virsh domcapabilities
 * --virttype kvm|qemu`): under TCG host-passthrough is not offered; a few of the custom models.
 */
export function fakeDomainCapabilities(type: 'kvm' | 'qemu'): DomainCapabilities {
  return {
    domainType: type,
    machine: 'pc-i440fx-7.2',
    cpuModes: type === 'kvm' ? ['host-passthrough', 'maximum', 'host-model', 'custom'] : ['maximum', 'host-model', 'custom'],
    cpuModels: ['qemu64', 'kvm64', 'Westmere', 'Nehalem', 'EPYC', 'pentium3'].map((name) => ({ name, usable: type === 'qemu' ? name !== 'EPYC' : name === 'pentium3' })),
    graphicsTypes: ['sdl', 'vnc', 'spice', 'egl-headless', 'dbus'],
    channelTypes: ['pty', 'unix', 'spicevmc'],
  };
}

export function randomMac(): string {
  return `52:54:00:${[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const DISK_TARGET = /^(vd|sd|hd|xvd)[a-z]+$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Which definition a read shows: the running one (get*) or the persistent one (`definitions`). */
type View = 'current' | 'persistent';

const invalid = (msg: string): HostError => new HostError('invalid', msg);
const failed = (msg: string): HostError => new HostError('operation-failed', msg);

export class FakeHost implements HostPort {
  pools = new Map<string, Obj<PoolDef>>();
  volumes = new Map<string, Map<string, VolumeDetail>>();
  networks = new Map<string, Obj<NetworkDef>>();
  domains = new Map<string, Obj<DomainDef>>();
  /** Volume files left in the directory of a deleted pool, by directory path. */
  leftFiles = new Map<string, Map<string, VolumeDetail>>();
  calls: string[] = [];
  private mutations = 0;
  private nextDomainId = 1;
  /** `op:name` → remaining failures (Infinity = always). op is the HostPort method name. */
  failures = new Map<string, number>();
  type: 'kvm' | 'qemu' = 'qemu';
  /** Deliver defined/undefined/started/stopped events for this fake's own calls, as libvirtd does. */
  lifecycleEvents = false;
  /** What hostIdentity() reports. */
  identity: HostIdentity = { uri: 'test:///fake', hostname: 'fake-host', uuid: '00000000-0000-4000-8000-00000000fa4e', driver: 'test' };

  /** DHCP leases by network name (see the header). */
  leases = new Map<string, DhcpLease[]>();
  /** Every started domain takes a lease per NIC on a network with a DHCP range. */
  guestDhcp = false;
  /** What the guest agent of a domain reports, by domain name; a domain not here has no agent channel. */
  agentAddresses = new Map<string, InterfaceAddresses[]>();
  /** The host's ARP table: MAC → IPv4. */
  arp = new Map<string, string>();

  /**
   * Hand out a lease on `network` to `mac` (the next free address of the DHCP range unless `ip` is
   * given), as dnsmasq does when a guest asks; returns it.
   */
  giveLease(network: string, mac: string, opts: { ip?: string; hostname?: string; family?: 'ipv4' | 'ipv6' } = {}): DhcpLease {
    const n = this.need(this.networks, network, 'network');
    const def = n.live ?? n.def;
    const list = this.leases.get(network) ?? [];
    const existing = list.find((l) => l.mac === mac.toLowerCase() && (opts.family ?? 'ipv4') === l.family);
    if (existing && !opts.ip) return existing;
    let ip = opts.ip;
    if (!ip) {
      const range = def.dhcp;
      if (!range?.start) throw new Error(`fake: network ${network} has no DHCP range`);
      const toN = (a: string): number => a.split('.').reduce((x, o) => x * 256 + Number(o), 0);
      const toS = (x: number): string => [24, 16, 8, 0].map((b) => (x >>> b) & 255).join('.');
      const used = new Set(list.map((l) => l.ip));
      for (let x = toN(range.start); x <= toN(range.end); x++) if (!used.has(toS(x))) { ip = toS(x); break; }
      if (!ip) throw new Error(`fake: DHCP range of ${network} is full`);
    }
    const lease: DhcpLease = {
      mac: mac.toLowerCase(), ip, prefix: opts.family === 'ipv6' ? 64 : (def.ipv4?.prefix ?? 24), family: opts.family ?? 'ipv4',
      hostname: opts.hostname ?? null, clientId: null, expiresAt: Math.floor(Date.now() / 1000) + 3600, iface: def.bridge ?? `virbr-${network}`,
    };
    this.leases.set(network, [...list.filter((l) => l !== existing), lease]);
    return lease;
  }

  async networkLeases(list: ObservedNetwork[]): Promise<Map<string, DhcpLease[]>> {
    const out = new Map<string, DhcpLease[]>();
    for (const n of list) {
      if (!n.active) continue;
      this.call('networkLeases', n.name, false);
      if (!this.networks.has(n.name)) continue;
      out.set(n.name, (this.leases.get(n.name) ?? []).map((l) => ({ ...l })));
    }
    return out;
  }

  async domainInterfaceAddresses(domain: ObservedDomain, source: InterfaceAddressSource): Promise<DomainAddresses> {
    this.call('domainInterfaceAddresses', domain.name, false);
    const d = this.domains.get(domain.name);
    if (!d) throw new HostError('not-found', `Domain not found: no domain with matching name '${domain.name}'`);
    const live = this.liveOf(d);
    if (!d.active || !live) return { unavailable: 'Requested operation is not valid: domain is not running' };
    if (source === 'agent') {
      const a = this.agentAddresses.get(domain.name);
      return a ? { interfaces: a.map((i) => ({ ...i, addresses: i.addresses.map((x) => ({ ...x })) })) } : { unavailable: 'argument unsupported: QEMU guest agent is not configured' };
    }
    const interfaces: InterfaceAddresses[] = [];
    live.nics.forEach((nic, i) => {
      const mac = nic.mac!.toLowerCase();
      const addresses = source === 'lease'
        ? (this.leases.get(nic.network) ?? []).filter((l) => l.mac === mac).map((l) => ({ ip: l.ip, prefix: l.prefix, family: l.family }))
        : this.arp.has(mac) ? [{ ip: this.arp.get(mac)!, prefix: 0, family: 'ipv4' as const }] : [];
      if (addresses.length > 0) interfaces.push({ name: `vnet${i}`, mac, addresses });
    });
    return { interfaces };
  }

  /** `op:name` → the HostError code of the injected failure (default operation-failed). */
  failureCodes = new Map<string, HostErrorCode>();

  failNext(op: keyof HostPort, name: string, times = 1, code: HostErrorCode = 'operation-failed'): void {
    this.failures.set(`${op}:${name}`, times);
    this.failureCodes.set(`${op}:${name}`, code);
  }

  /** See HostPort.setMutationGuard: a refused call is neither made nor recorded in `calls`. */
  guard: MutationGuard | undefined;
  setMutationGuard(guard: MutationGuard | undefined): void {
    this.guard = guard;
  }

  private call(op: string, name: string, mutating: boolean): void {
    const refused = mutating ? this.guard?.() : undefined;
    if (refused) throw new MutationRefusedError(`${op} ${name}: not done: ${refused}`);
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
  /** What domainCapabilities() reports; undefined: {@link fakeDomainCapabilities} of `type`; null: none (as the test driver). */
  domainCaps: DomainCapabilities | null | undefined;
  async domainCapabilities(): Promise<DomainCapabilities | null> {
    this.call('domainCapabilities', '*', false);
    return this.domainCaps === undefined ? fakeDomainCapabilities(this.type) : this.domainCaps;
  }
  async domainType(): Promise<'kvm' | 'qemu'> {
    return this.type;
  }
  /** What nodeInfo() reports (pools: the active pools with this capacity each unless `node.disk` names them). */
  node: { memory: number; cpus: number; poolCapacity: number; disk?: Record<string, number> } = { memory: 8 * 2 ** 30, cpus: 4, poolCapacity: 100 * 2 ** 30 };
  async nodeInfo(): Promise<NodeInfo> {
    this.call('nodeInfo', '*', false);
    const disk = this.node.disk ?? Object.fromEntries([...this.pools].filter(([, p]) => p.active).map(([n]) => [n, this.node.poolCapacity]));
    return { memory: this.node.memory, cpus: this.node.cpus, disk: { ...disk } };
  }
  async hostIdentity(): Promise<HostIdentity> {
    this.call('hostIdentity', '*', false);
    return { ...this.identity };
  }
  async domainAllocations(): Promise<Map<string, { memory: number; vcpus: number }>> {
    this.call('domainAllocations', '*', false);
    return new Map([...this.domains].map(([name, d]) => [name, { memory: (d.def.maxMemoryKiB ?? d.def.memoryKiB) * 1024, vcpus: d.def.vcpus }]));
  }
  async poolInfo(list: ObservedPool[]): Promise<Map<string, PoolInfo>> {
    const out = new Map<string, PoolInfo>();
    for (const p of list) {
      if (!p.active) continue;
      this.call('poolInfo', p.name, false);
      if (!this.pools.get(p.name)?.active) continue;
      const allocation = [...(this.volumes.get(p.name)?.values() ?? [])].reduce((n, v) => n + v.capacityBytes, 0);
      const capacity = this.node.disk?.[p.name] ?? this.node.poolCapacity;
      out.set(p.name, { capacity, allocation, available: Math.max(0, capacity - allocation) });
    }
    return out;
  }
  async snapshot(): Promise<HostSnapshot> {
    this.call('snapshot', '*', false);
    const list = <D>(m: Map<string, Obj<D>>) =>
      [...m].map(([name, o]) => ({ name, uuid: o.uuid, active: o.active, autostart: o.autostart, persistent: !o.transient }));
    const domains = [...this.domains].map(([name, o]) => ({
      name, uuid: o.uuid, id: o.active ? (o.id ?? 1) : -1, active: o.active, autostart: o.autostart, persistent: !o.transient,
    }));
    return { pools: list(this.pools), networks: list(this.networks), domains };
  }

  /**
   * Like the adapter: one read per listed object, objects gone since listing left out. These are
   * the persistent definitions (the adapter reads with the INACTIVE flag), not what get* shows.
   */
  /**
   * Names (volumes: keys) of objects whose definition the real adapter's parser would refuse, with
   * the parser's message: `definitions` reports them as unreadable (or fails without a collector).
   */
  unparsable = new Map<string, string>();
  readonly definitions: HostDefinitions = {
    domains: async (list, u) => this.describe('describeDomain', list, u, (n) => this.domainDetail(n, 'persistent')),
    networks: async (list, u) => this.describe('describeNetwork', list, u, (n) => this.networkDetail(n, 'persistent')),
    pools: async (list, u) => this.describe('describePool', list, u, (n) => this.poolDetail(n, 'persistent')),
    volumes: async (list, u) => {
      const out = new Map<string, VolumeDetail>();
      for (const v of list) {
        this.call('describeVolume', v.name, false);
        if (this.pools.get(v.pool)?.active === false) throw failed(`storage pool '${v.pool}' is not active`);
        const d = this.volumes.get(v.pool)?.get(v.name);
        if (d && this.unreadable(v.key, u)) continue;
        if (d) out.set(v.key, { ...d });
      }
      return out;
    },
  };
  /** True when the object is in `unparsable` (then reported in `u`, or thrown without it). */
  private unreadable(key: string, u: Map<string, string> | undefined): boolean {
    const why = this.unparsable.get(key);
    if (why === undefined) return false;
    if (!u) throw new HostError('unknown', why);
    u.set(key, `its definition cannot be read: ${why}`);
    return true;
  }
  private describe<D>(op: string, list: { name: string }[], u: Map<string, string> | undefined, get: (name: string) => D | null): Map<string, D> {
    const out = new Map<string, D>();
    for (const o of list) {
      this.call(op, o.name, false);
      const d = get(o.name);
      if (d && this.unreadable(o.name, u)) continue;
      if (d) out.set(o.name, d);
    }
    return out;
  }
  async listVolumes(pool: string): Promise<ObservedVolume[]> {
    this.call('listVolumes', pool, false);
    const p = this.need(this.pools, pool, 'storage pool');
    if (!p.active) throw failed(`storage pool '${pool}' is not active`);
    return [...(this.volumes.get(pool)?.values() ?? [])].map((v) => ({ pool, name: v.name, key: v.key }));
  }

  /**
   * What getPool/getNetwork/getRunningDomain show (`current`): the running definition while
   * active, else the persistent one. What getDomain and `definitions` show (`persistent`): always
   * the persistent one.
   */
  private shown<D>(o: Obj<D>, view: View = 'current'): D {
    return view === 'current' && o.active && o.live ? o.live : o.def;
  }

  async getPool(name: string): Promise<PoolDetail | null> {
    this.call('getPool', name, false);
    return this.poolDetail(name);
  }
  private poolDetail(name: string, view: View = 'current'): PoolDetail | null {
    const p = this.pools.get(name);
    // libvirt's pool XML has no <metadata>: the owner marker is not stored for pools.
    return p ? { name, uuid: p.uuid, active: p.active, autostart: p.autostart, path: this.shown(p, view).path } : null;
  }
  async getNetwork(name: string): Promise<NetworkDetail | null> {
    this.call('getNetwork', name, false);
    return this.networkDetail(name);
  }
  private networkDetail(name: string, view: View = 'current'): NetworkDetail | null {
    const n = this.networks.get(name);
    if (!n) return null;
    const { marker, uuid: _u, ...rest } = this.shown(n, view);
    return { ...rest, uuid: n.uuid, active: n.active, autostart: n.autostart, marker };
  }
  async getDomain(name: string): Promise<DomainDetail | null> {
    this.call('getDomain', name, false);
    return this.domainDetail(name, 'persistent');
  }
  async getRunningDomain(name: string): Promise<(DomainDetail & { id: number }) | null> {
    this.call('getRunningDomain', name, false);
    const d = this.domains.get(name);
    if (!d?.active) return null;
    return { ...this.domainDetail(name, 'current')!, id: d.id ?? 1 };
  }
  private domainDetail(name: string, view: View): DomainDetail | null {
    const d = this.domains.get(name);
    if (!d) return null;
    const def = this.shown(d, view);
    return {
      name, uuid: d.uuid, type: def.type, active: d.active, autostart: d.autostart,
      vcpus: def.vcpus, maxVcpus: def.maxVcpus ?? def.vcpus,
      memoryKiB: def.memoryKiB, maxMemoryKiB: def.maxMemoryKiB ?? def.memoryKiB, balloon: d.balloon ?? 'virtio',
      // libvirt does not keep an empty description
      ...(def.description ? { description: def.description } : {}),
      // libvirt does not keep an empty <cmdline/>; the parser reports no boot when <os> has none of these
      ...(bootDetail(def.boot) ? { boot: bootDetail(def.boot) } : {}),
      // libvirt writes `custom` qemu64 into an x86 definition without <cpu>
      cpu: def.cpu ? { ...def.cpu } : { mode: 'custom', model: 'qemu64' },
      // a running domain's graphics has the port libvirt picked (5900 + n)
      graphics: def.graphics ? [{ type: def.graphics.type, listen: def.graphics.listen, ...(view === 'current' && d.active ? { port: 5900 + (d.id ?? 0) } : {}) }] : [],
      guestAgent: def.guestAgent ?? true,
      // As the XML parser reports them: device='cdrom' disks (declared cdroms, then the seed) in `cdroms`.
      disks: def.disks.filter((x) => x.device !== 'cdrom').map((x) => ({ path: x.path, target: x.target, bus: x.bus, format: x.format, ...(x.bootOrder !== undefined ? { bootOrder: x.bootOrder } : {}) })),
      cdroms: [
        ...def.disks.filter((x) => x.device === 'cdrom').map((x) => ({ path: x.path, target: x.target, bus: x.bus, format: x.format, ...(x.bootOrder !== undefined ? { bootOrder: x.bootOrder } : {}) })),
        ...(def.cdroms ?? []).map((x) => ({ path: x.path, target: x.target, bus: x.bus })),
      ],
      nics: def.nics.map((x) => ({ network: x.network, mac: x.mac ?? '', model: x.model })), marker: def.marker,
      extraDevices: [...(def.extraDevices ?? [])],
    };
  }
  /** The running definition of an active object (its `def` if a test marked it active directly). */
  private liveOf<D>(o: Obj<D>): D | undefined {
    return o.active ? (o.live ?? o.def) : undefined;
  }
  async getVolume(pool: string, name: string): Promise<VolumeDetail | null> {
    this.call('getVolume', name, false);
    if (this.pools.get(pool)?.active === false) throw failed(`storage pool '${pool}' is not active`);
    const v = this.volumes.get(pool)?.get(name);
    return v ? { ...v } : null;
  }

  private define<D extends { name: string; uuid?: string }>(m: Map<string, Obj<D>>, def: D, what: string): { obj: Obj<D>; updated: boolean } {
    if (def.name.includes('/')) throw invalid(`name ${def.name} cannot contain '/'`);
    const existing = m.get(def.name);
    if (existing && existing.uuid !== def.uuid)
      throw failed(`${what} '${def.name}' already exists with uuid ${existing.uuid}`);
    if (!existing && def.uuid) {
      const other = [...m].find(([, o]) => o.uuid === def.uuid);
      if (other) throw failed(`${what} '${other[0]}' is already defined with uuid ${def.uuid}`);
    }
    if (existing) {
      if (existing.active) existing.live ??= existing.def;
      existing.def = def;
      existing.transient = false;
      return { obj: existing, updated: true };
    }
    const obj: Obj<D> = { uuid: def.uuid ?? randomUUID(), def, active: false, autostart: false };
    m.set(def.name, obj);
    return { obj, updated: false };
  }
  private need<D>(m: Map<string, Obj<D>>, name: string, what: string): Obj<D> {
    const o = m.get(name);
    if (!o) throw new HostError('not-found', `${what} not found: no ${what} with matching name '${name}'`);
    return o;
  }
  private setAutostart<D>(o: Obj<D>, what: string, autostart: boolean): void {
    if (o.transient) throw failed(`cannot set autostart for transient ${what}`);
    o.autostart = autostart;
  }
  /** Stop an object: it runs its persistent definition next time, or vanishes if transient. */
  private deactivate<D>(m: Map<string, Obj<D>>, name: string, o: Obj<D>): void {
    o.active = false;
    o.live = undefined;
    if (o.transient) m.delete(name);
  }

  async definePool(def: PoolDef): Promise<void> {
    this.call('definePool', def.name, true);
    const clash = [...this.pools].find(([n, p]) => n !== def.name && p.uuid !== def.uuid && p.def.path === def.path);
    if (clash || (def.uuid && [...this.pools].some(([n, p]) => n !== def.name && p.uuid === def.uuid)))
      throw failed(`Storage source conflict with pool: '${(clash ?? [...this.pools].find(([, p]) => p.uuid === def.uuid)!)[0]}'`);
    this.define(this.pools, def, 'pool');
    if (!this.volumes.has(def.name)) {
      this.volumes.set(def.name, this.leftFiles.get(def.path) ?? new Map());
      this.leftFiles.delete(def.path);
      for (const v of this.volumes.get(def.name)!.values()) v.pool = def.name;
    }
  }
  /**
   * Directories of the fake's filesystem, when a test tracks them (`dirs` set): buildPool creates
   * the pool's path and missing parents; removeDirs removes empty ones (`dirFiles` lists files
   * someone else put in a directory). Untracked (undefined): every directory exists.
   */
  dirs: Set<string> | undefined;
  dirFiles = new Map<string, string[]>();
  async buildPool(name: string): Promise<string[]> {
    this.call('buildPool', name, true);
    const p = this.need(this.pools, name, 'storage pool');
    if (p.active || !this.dirs) return [];
    const made: string[] = [];
    for (let d = p.def.path; d !== '/' && !this.dirs.has(d); d = d.slice(0, d.lastIndexOf('/')) || '/') made.push(d);
    for (const d of made) this.dirs.add(d);
    return made;
  }
  async removeDirs(paths: string[]): Promise<{ removed: string[]; kept: { path: string; why: string }[] }> {
    this.call('removeDirs', paths.join(','), true);
    const removed: string[] = [];
    const kept: { path: string; why: string }[] = [];
    for (const d of [...paths].sort((a, b) => b.split('/').length - a.split('/').length)) {
      const busy = (this.dirFiles.get(d)?.length ?? 0) > 0 || [...(this.dirs ?? [])].some((x) => x.startsWith(`${d}/`));
      if (busy) kept.push({ path: d, why: 'not empty (files virtform did not put there)' });
      else {
        this.dirs?.delete(d);
        removed.push(d);
      }
    }
    return { removed, kept };
  }
  async startPool(name: string): Promise<void> {
    this.call('startPool', name, true);
    const p = this.need(this.pools, name, 'storage pool');
    if (p.active) return;
    p.active = true;
    p.live = p.def;
  }
  async setPoolAutostart(name: string, autostart: boolean): Promise<void> {
    this.call('setPoolAutostart', name, true);
    this.setAutostart(this.need(this.pools, name, 'storage pool'), 'pool', autostart);
  }
  async deletePool(name: string): Promise<void> {
    this.call('deletePool', name, true);
    const p = this.pools.get(name);
    if (!p) return;
    // Destroy, remove the directory only if empty, undefine: files in it stay on disk.
    const files = this.volumes.get(name);
    if (files && files.size > 0) this.leftFiles.set(p.def.path, files);
    this.pools.delete(name);
    this.volumes.delete(name);
  }

  async createVolume(def: VolumeDef): Promise<VolumeDetail> {
    this.call('createVolume', def.name, true);
    const pool = this.need(this.pools, def.pool, 'storage pool');
    if (!pool.active) throw failed(`storage pool '${def.pool}' is not active`);
    if (def.name.includes('/')) throw failed(`volume name '${def.name}' cannot contain '/'`);
    const vols = this.volumes.get(def.pool)!;
    if (vols.has(def.name)) throw new HostError('already-exists', `storage volume '${def.name}' exists already`);
    if (def.backing && !this.fileExists(def.backing.path))
      throw failed(`inaccessible backing store volume ${def.backing.path}: No such file or directory`);
    const path = `${this.shown(pool).path}/${def.name}`;
    const v: VolumeDetail = {
      pool: def.pool, name: def.name, key: path, path, capacityBytes: def.capacityBytes, format: def.format,
      ...(def.backing ? { backingPath: def.backing.path } : {}),
    };
    vols.set(def.name, v);
    return { ...v };
  }
  /** Bytes written by `uploadVolume`, by volume path (the fake keeps them in memory). */
  contents = new Map<string, Buffer>();
  async uploadVolume(
    pool: string,
    name: string,
    data: AsyncIterable<Uint8Array | VolumeHole>,
    opts: { sparse?: boolean; onProgress?: (bytes: number) => void } = {},
  ): Promise<void> {
    this.call('uploadVolume', name, true);
    this.need(this.pools, pool, 'storage pool');
    const v = this.volumes.get(pool)?.get(name);
    if (!v) throw new HostError('not-found', `storage volume not found: no storage vol with matching name '${name}'`);
    const parts: Buffer[] = [];
    let sent = 0;
    for await (const chunk of data) {
      // A hole (sparse stream) is that many zero bytes in the file.
      const bytes = chunk instanceof Uint8Array ? Buffer.from(chunk) : Buffer.alloc(chunk.hole);
      parts.push(bytes);
      sent += bytes.length;
      opts.onProgress?.(sent);
    }
    const all = Buffer.concat(parts);
    // An empty raw volume takes any upload (a move's copy: libvirt reads the file again after it).
    if (all.length > v.capacityBytes && v.format === 'raw' && v.capacityBytes > 0) throw invalid(`upload of ${all.length} bytes exceeds the volume's capacity ${v.capacityBytes}`);
    this.contents.set(v.path, all);
    // libvirt reads the volume again after an upload: an empty file now has the upload's size.
    if (v.capacityBytes === 0) v.capacityBytes = all.length;
  }
  /** Snapshots per domain name (`domainSnapshotCount`). */
  domainSnapshots = new Map<string, number>();
  async domainSnapshotCount(name: string): Promise<number> {
    this.call('domainSnapshotCount', name, false);
    return (this.domainSnapshots.get(name) ?? 0) + (this.snapshotList.get(name)?.length ?? 0);
  }

  // --- snapshots (kind Snapshot, issue 24: helper snaps) --------------------------------------
  /** Snapshots taken through the port, per domain name (a revert restores `def`, `active` and the disk contents). */
  snapshotList = new Map<string, (SnapshotDetail & { saved: { def: DomainDef; active: boolean; contents: Map<string, Buffer> } })[]>();
  /** Seconds since the epoch a new snapshot records (tests set it). */
  snapshotClock = (): number => Math.floor(Date.now() / 1000);
  private snapshotOut(s: SnapshotDetail): SnapshotDetail {
    const { saved: _saved, ...rest } = s as SnapshotDetail & { saved?: unknown };
    return { ...rest, disks: rest.disks.map((d) => ({ ...d })) };
  }
  async listDomainSnapshots(list: ObservedDomain[]): Promise<Map<string, SnapshotDetail[]>> {
    this.call('listDomainSnapshots', '*', false);
    const out = new Map<string, SnapshotDetail[]>();
    for (const d of list) if (this.domains.has(d.name)) out.set(d.name, (this.snapshotList.get(d.name) ?? []).map((s) => this.snapshotOut(s)));
    return out;
  }
  async getDomainSnapshot(domain: string, name: string): Promise<SnapshotDetail | null> {
    this.call('getDomainSnapshot', name, false);
    const s = this.snapshotList.get(domain)?.find((x) => x.name === name);
    return s ? this.snapshotOut(s) : null;
  }
  async createDomainSnapshot(def: SnapshotDef): Promise<SnapshotDetail> {
    this.call('createDomainSnapshot', def.name, true);
    const d = this.need(this.domains, def.domain, 'domain');
    const list = this.snapshotList.get(def.domain) ?? [];
    if (list.some((x) => x.name === def.name)) throw new HostError('already-exists', `a snapshot named ${def.name} exists`);
    if (d.active && !def.memory) throw invalid('Operation not supported: internal snapshot of a running VM must include the memory state');
    const raw = d.def.disks.find((x) => x.format === 'raw');
    if (raw) throw invalid(`internal snapshot for disk ${raw.target} unsupported for storage type raw`);
    const contents = new Map<string, Buffer>();
    for (const x of d.def.disks) {
      const c = this.contents.get(x.path);
      if (c) contents.set(x.path, Buffer.from(c));
    }
    const s = {
      domain: def.domain, name: def.name, ...(def.description ? { description: def.description } : {}),
      creationTime: this.snapshotClock(), state: d.active ? 'running' : 'shutoff', memory: d.active ? 'internal' : 'no',
      disks: d.def.disks.map((x) => ({ target: x.target, snapshot: 'internal' })),
      saved: { def: structuredClone(d.def), active: d.active, contents },
    };
    list.push(s);
    this.snapshotList.set(def.domain, list);
    return this.snapshotOut(s);
  }
  async deleteDomainSnapshot(domain: string, name: string): Promise<void> {
    this.call('deleteDomainSnapshot', name, true);
    const list = this.snapshotList.get(domain);
    if (list) this.snapshotList.set(domain, list.filter((x) => x.name !== name));
  }
  async revertDomainSnapshot(domain: string, name: string): Promise<void> {
    this.call('revertDomainSnapshot', name, true);
    const d = this.need(this.domains, domain, 'domain');
    const s = this.snapshotList.get(domain)?.find((x) => x.name === name);
    if (!s) throw new HostError('not-found', `Domain snapshot not found: no domain snapshot with matching name '${name}'`);
    d.def = structuredClone(s.saved.def);
    for (const [path, c] of s.saved.contents) this.contents.set(path, Buffer.from(c));
    if (s.saved.active && !d.active) await this.startDomain(domain);
    else if (!s.saved.active && d.active) await this.stopDomain(domain);
  }
  // --- end snapshots ---------------------------------------------------------------------------
  /** The volume's bytes (`contents`, else zeros of its capacity), runs of 64 KiB zeros as holes. */
  async downloadVolume(pool: string, name: string): Promise<AsyncIterable<Uint8Array | VolumeHole>> {
    this.call('downloadVolume', name, false);
    const v = this.volumes.get(pool)?.get(name);
    if (!v) throw new HostError('not-found', `storage volume not found: no storage vol with matching name '${name}'`);
    const bytes = this.contents.get(v.path) ?? Buffer.alloc(0);
    const hole = v.capacityBytes > bytes.length ? v.capacityBytes - bytes.length : 0;
    return (async function* () {
      for (let at = 0; at < bytes.length; at += 65536) {
        const part = bytes.subarray(at, Math.min(bytes.length, at + 65536));
        if (part.every((b) => b === 0)) yield { hole: part.length };
        else yield part;
      }
      if (hole > 0 && bytes.length === 0) yield { hole };
    })();
  }
  async resizeVolume(pool: string, name: string, capacityBytes: number): Promise<void> {
    this.call('resizeVolume', name, true);
    this.need(this.pools, pool, 'storage pool');
    const v = this.volumes.get(pool)?.get(name);
    if (!v) throw new HostError('not-found', `storage volume not found: no storage vol with matching name '${name}'`);
    if (capacityBytes < v.capacityBytes) throw invalid("Can't shrink capacity below current capacity unless shrink flag explicitly specified");
    if ([...this.domains.values()].some((d) => this.liveOf(d)?.disks.some((x) => x.path === v.path)))
      throw failed(`qemu-img: Could not open '${v.path}': Failed to get "write" lock`);
    v.capacityBytes = capacityBytes;
  }
  async deleteVolume(pool: string, name: string): Promise<void> {
    this.call('deleteVolume', name, true);
    const v = this.volumes.get(pool)?.get(name);
    if (v) this.contents.delete(v.path);
    this.volumes.get(pool)?.delete(name);
  }
  private fileExists(path: string): boolean {
    return [...this.volumes.values(), ...this.leftFiles.values()].some((m) => [...m.values()].some((v) => v.path === path));
  }

  async defineNetwork(def: NetworkDef): Promise<void> {
    this.call('defineNetwork', def.name, true);
    if (def.ipv4 && (!IPV4.test(def.ipv4.address) || def.ipv4.prefix < 0 || def.ipv4.prefix > 32))
      throw invalid(`Invalid address ${def.ipv4.address}/${def.ipv4.prefix} in network '${def.name}'`);
    this.define(this.networks, def, 'network');
  }
  async startNetwork(name: string): Promise<void> {
    this.call('startNetwork', name, true);
    const n = this.need(this.networks, name, 'network');
    if (n.active) return;
    n.active = true;
    n.live = n.def;
  }
  async stopNetwork(name: string): Promise<void> {
    this.call('stopNetwork', name, true);
    const n = this.networks.get(name);
    if (n?.active) this.deactivate(this.networks, name, n);
  }
  async setNetworkAutostart(name: string, autostart: boolean): Promise<void> {
    this.call('setNetworkAutostart', name, true);
    this.setAutostart(this.need(this.networks, name, 'network'), 'network', autostart);
  }
  async updateNetworkDhcpHost(name: string, op: 'add' | 'delete', host: DhcpHost): Promise<void> {
    this.call('updateNetworkDhcpHost', name, true);
    const n = this.need(this.networks, name, 'network');
    // libvirt updates the live definition (when active) and the persistent one, with the same rules.
    const defs: NetworkDef[] = [n.def, ...(n.active && n.live ? [n.live] : [])];
    const [updated, ...others] = defs.map((d) => updateDhcp(d, op, host));
    n.def = updated!;
    if (n.active && n.live) n.live = others[0];
  }
  async undefineNetwork(name: string): Promise<void> {
    this.call('undefineNetwork', name, true);
    const n = this.networks.get(name);
    if (!n) return;
    if (n.active) {
      // Keeps running until stopped; its only definition is now the running one (libvirt drops the
      // persistent one), which is also what the INACTIVE XML of a transient object shows.
      n.transient = true;
      n.def = n.live ?? n.def;
      n.live = undefined;
    } else this.networks.delete(name);
  }

  async defineDomain(def: DomainDef): Promise<{ uuid: string }> {
    this.call('defineDomain', def.name, true);
    validateDomain(def);
    // libvirt: a NIC without a MAC gets a new generated one at every define
    const stored: DomainDef = { ...def, nics: def.nics.map((nic) => ({ ...nic, mac: nic.mac ?? randomMac() })) };
    const { obj, updated } = this.define(this.domains, stored, 'domain');
    obj.balloon = 'virtio';
    this.emit(def.name, obj.uuid, 'defined', updated ? 1 : 0);
    return { uuid: obj.uuid };
  }
  /**
   * The live calls (LIVE|CONFIG on a running domain, CONFIG on a stopped one): the change is
   * checked against, and made to, the running definition and the persistent one.
   */
  private liveChange(name: string, check: (d: DomainDef, which: 'live' | 'persistent') => void, change: (d: DomainDef) => DomainDef): void {
    const d = this.need(this.domains, name, 'domain');
    const live = this.liveOf(d);
    if (live) check(live, 'live');
    check(d.def, 'persistent');
    if (live) d.live = change(live);
    d.def = change(d.def);
  }
  async setDomainVcpus(name: string, vcpus: number): Promise<void> {
    this.call('setDomainVcpus', name, true);
    this.liveChange(name, (d, which) => {
      const max = d.maxVcpus ?? d.vcpus;
      if (vcpus > max) throw invalid(`requested vcpus is greater than max allowable vcpus for the ${which} domain: ${vcpus} > ${max}`);
      if (which === 'live' && vcpus < d.vcpus) throw failed("unable to execute QEMU command 'device_del': acpi: device unplug request for not supported device type: qemu64-x86_64-cpu");
    }, (d) => ({ ...d, vcpus }));
  }
  async setDomainMemory(name: string, memoryKiB: number): Promise<void> {
    this.call('setDomainMemory', name, true);
    this.liveChange(name, (d) => {
      if (memoryKiB > (d.maxMemoryKiB ?? d.memoryKiB)) throw invalid('cannot set memory higher than max memory');
    }, (d) => ({ ...d, memoryKiB }));
  }
  /** Balloon `actual` per running domain (KiB) when the guest does not follow the target (no balloon driver); default: the target. */
  balloonActual = new Map<string, number>();
  /** vCPUs online as a guest agent reports them, per domain; absent: no agent answers. */
  agentVcpus = new Map<string, number>();
  async domainBalloonKiB(name: string): Promise<number | null> {
    this.call('domainBalloonKiB', name, false);
    const live = this.domains.get(name)?.active ? this.domainDetail(name, 'current') : null;
    return live ? this.balloonActual.get(name) ?? live.memoryKiB : null;
  }
  async guestOnlineVcpus(name: string): Promise<number | null> {
    this.call('guestOnlineVcpus', name, false);
    return this.domains.get(name)?.active ? this.agentVcpus.get(name) ?? null : null;
  }
  async setDomainDescription(name: string, description: string | undefined): Promise<void> {
    this.call('setDomainDescription', name, true);
    this.liveChange(name, () => undefined, (d) => ({ ...d, description }));
  }
  // --- hot-plug (issue 24; helper restart) ---------------------------------------------------
  /** Domains whose guest never completes a live detach (no ACPI unplug: paused, no OS, before its kernel). */
  detachIgnored = new Set<string>();
  async attachDomainDevice(name: string, device: HotplugDevice, where: { live: boolean; config: boolean }): Promise<void> {
    this.call('attachDomainDevice', name, true);
    const d = this.need(this.domains, name, 'domain');
    const add = (def: DomainDef, which: string): DomainDef => {
      if ('disk' in device) {
        if (def.disks.some((x) => x.target === device.disk.target)) throw failed(`target ${device.disk.target} already exists (${which})`);
        return { ...def, disks: [...def.disks, { ...device.disk }] };
      }
      if (def.nics.some((x) => x.mac?.toLowerCase() === device.nic.mac.toLowerCase())) throw invalid(`a NIC with MAC ${device.nic.mac} already exists (${which})`);
      return { ...def, nics: [...def.nics, { ...device.nic }] };
    };
    if (where.live) {
      const live = this.liveOf(d);
      if (!live) throw invalid('cannot do live update a device on inactive domain');
      d.live = add(live, 'live');
    }
    if (where.config) d.def = add(d.def, 'persistent');
  }
  async detachDomainDevice(name: string, device: HotplugDevice, where: { live: boolean; config: boolean }): Promise<void> {
    this.call('detachDomainDevice', name, true);
    const d = this.need(this.domains, name, 'domain');
    const remove = (def: DomainDef, which: string): DomainDef => {
      if ('disk' in device) {
        if (!def.disks.some((x) => x.target === device.disk.target)) throw invalid(`disk ${device.disk.target} not found (${which})`);
        return { ...def, disks: def.disks.filter((x) => x.target !== device.disk.target) };
      }
      const mac = device.nic.mac.toLowerCase();
      if (!def.nics.some((x) => x.mac?.toLowerCase() === mac)) throw invalid(`no device matching MAC address ${device.nic.mac} found (${which})`);
      return { ...def, nics: def.nics.filter((x) => x.mac?.toLowerCase() !== mac) };
    };
    if (where.live) {
      const live = this.liveOf(d);
      if (!live) throw invalid('cannot do live update a device on inactive domain');
      // The guest completes the unplug (or, in detachIgnored, never does: the request stays pending).
      const after = remove(live, 'live');
      if (!this.detachIgnored.has(name)) d.live = after;
      else d.live = live;
    }
    if (where.config) d.def = remove(d.def, 'persistent');
  }

  async resizeDomainDisk(name: string, path: string, capacityBytes: number): Promise<void> {
    this.call('resizeDomainDisk', name, true);
    const live = this.liveOf(this.need(this.domains, name, 'domain'));
    if (!live) throw failed(`domain is not running`);
    if (!live.disks.some((x) => x.path === path)) throw invalid(`disk '${path}' was not found in the domain config`);
    for (const m of this.volumes.values()) for (const v of m.values()) if (v.path === path) v.capacityBytes = capacityBytes;
  }
  async startDomain(name: string): Promise<void> {
    this.call('startDomain', name, true);
    const d = this.need(this.domains, name, 'domain');
    if (d.active) return;
    for (const nic of d.def.nics) {
      const net = this.need(this.networks, nic.network, 'network');
      if (!net.active) throw failed(`network '${nic.network}' is not active`);
    }
    for (const disk of d.def.disks) {
      if (!this.fileExists(disk.path)) throw failed(`Cannot access storage file '${disk.path}': No such file or directory`);
      // QEMU's image lock: a disk another running domain has open.
      for (const [other, o] of this.domains) {
        if (other !== name && o.active && (this.liveOf(o) ?? o.def).disks.some((x) => x.path === disk.path)) {
          throw failed(`internal error: qemu unexpectedly closed the monitor: Failed to get "write" lock: Is another process using the image [${disk.path}]?`);
        }
      }
    }
    // libvirtd defines these and refuses them at start (measured: libvirt 9.0, QEMU 7.2).
    const caps = this.domainCaps === undefined ? fakeDomainCapabilities(this.type) : this.domainCaps;
    const cpu = d.def.cpu;
    if (caps && cpu && !caps.cpuModes.includes(cpu.mode)) {
      throw invalid(`unsupported configuration: CPU mode '${cpu.mode}' for x86_64 ${d.def.type} domain on x86_64 host is not supported by hypervisor`);
    }
    if (caps && cpu?.mode === 'custom' && !caps.cpuModels.some((m) => m.name === cpu.model)) throw failed(`internal error: Unknown CPU model ${cpu.model}`);
    if (caps && d.def.graphics && !caps.graphicsTypes.includes(d.def.graphics.type)) throw invalid(`unsupported configuration: ${d.def.graphics.type} graphics are not supported with this QEMU`);
    d.active = true;
    d.id = this.nextDomainId++;
    d.live = d.def;
    if (this.guestDhcp) {
      for (const nic of d.def.nics) {
        const net = this.networks.get(nic.network)!;
        if ((net.live ?? net.def).dhcp?.start) this.giveLease(nic.network, nic.mac!);
      }
    }
    this.emit(name, d.uuid, 'started', 0);
  }
  async stopDomain(name: string): Promise<void> {
    this.call('stopDomain', name, true);
    const d = this.domains.get(name);
    if (!d?.active) return;
    this.deactivate(this.domains, name, d);
    this.emit(name, d.uuid, 'stopped', 1);
  }
  async setDomainAutostart(name: string, autostart: boolean): Promise<void> {
    this.call('setDomainAutostart', name, true);
    this.setAutostart(this.need(this.domains, name, 'domain'), 'domain', autostart);
  }
  async undefineDomain(name: string): Promise<void> {
    this.call('undefineDomain', name, true);
    const d = this.domains.get(name);
    if (!d) return;
    if (d.active) {
      // Keeps running until stopped; its only definition is now the running one (libvirt drops the
      // persistent one), which is also what the INACTIVE XML of a transient object shows.
      d.transient = true;
      d.def = d.live ?? d.def;
      d.live = undefined;
    } else this.domains.delete(name);
    this.snapshotList.delete(name); // VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA (the qcow2 keeps their data)
    this.emit(name, d.uuid, 'undefined', 0);
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
  /** Deliver a lifecycle event after the call that caused it returns, as the daemon does. */
  private emit(name: string, uuid: string, event: string, detail: number): void {
    const subscribers = [...this.eventSubscribers];
    if (!this.lifecycleEvents || subscribers.length === 0) return;
    setImmediate(() => {
      for (const cb of subscribers) if (this.eventSubscribers.has(cb)) cb({ name, uuid, event, detail });
    });
  }
  /** Test helper: emit a lifecycle event as libvirt would (synchronously). */
  emitDomainEvent(name: string, event: string): void {
    const uuid = this.domains.get(name)?.uuid ?? '00000000-0000-0000-0000-000000000000';
    for (const cb of this.eventSubscribers) cb({ name, uuid, event, detail: 0 });
  }
  /** Test helper: a 'stopped' lifecycle event with its detail (virDomainEventStoppedDetailType), as libvirt sends it. */
  emitStoppedEvent(name: string, detail: number): void {
    const uuid = this.domains.get(name)?.uuid ?? '00000000-0000-0000-0000-000000000000';
    for (const cb of this.eventSubscribers) cb({ name, uuid, event: 'stopped', detail });
  }
  /** Test helper: simulate the daemon going away. */
  disconnect(err = new Error('connection closed')): void {
    const handlers = this.disconnectHandlers;
    this.disconnectHandlers = [];
    for (const cb of handlers) cb(err);
  }
  async close(): Promise<void> {}
}

/** Definition checks libvirt (or the adapter's XML builder) makes, as `invalid`. */
function bootDetail(b: DomainDef['boot']): DomainDetail['boot'] {
  if (!b) return undefined;
  const out = { ...b };
  if (!out.cmdline) delete out.cmdline;
  return Object.keys(out).length > 0 ? out : undefined;
}

function validateDomain(def: DomainDef): void {
  if (def.name.includes('/')) throw invalid(`name ${def.name} cannot contain '/'`);
  if (!Number.isInteger(def.vcpus) || def.vcpus < 1) throw invalid(`vcpus must be an integer >= 1, got ${def.vcpus}`);
  if (!Number.isInteger(def.memoryKiB) || def.memoryKiB < 1) throw invalid(`memoryKiB must be an integer >= 1, got ${def.memoryKiB}`);
  const targets = new Set<string>();
  const boots = new Set<number>();
  for (const d of def.disks) {
    if (targets.has(d.target)) throw invalid(`duplicate disk target ${d.target}`);
    targets.add(d.target);
    if (d.bootOrder !== undefined) {
      if (boots.has(d.bootOrder)) throw invalid(`duplicate boot order ${d.bootOrder}`);
      boots.add(d.bootOrder);
    }
    if (!DISK_TARGET.test(d.target)) throw invalid(`Unknown disk name '${d.target}' and no address specified`);
  }
  for (const c of def.cdroms ?? []) {
    if (targets.has(c.target)) throw invalid(`duplicate disk target ${c.target}`);
    targets.add(c.target);
  }
  for (const nic of def.nics) {
    if (nic.mac === undefined) continue;
    if (!MAC.test(nic.mac)) throw invalid(`unable to parse mac address '${nic.mac}'`);
    if (parseInt(nic.mac.slice(0, 2), 16) & 1) throw invalid(`expected unicast mac address, found multicast '${nic.mac}'`);
  }
}

/** libvirt's network-update rules for `<ip><dhcp><host>` (add-last / delete), as the adapter sees them. */
function updateDhcp(def: NetworkDef, op: 'add' | 'delete', host: DhcpHost): NetworkDef {
  if (!def.ipv4) throw failed(`couldn't update dhcp host entry - no <ip> element found in network '${def.name}'`);
  const hosts = def.dhcp?.hosts ?? [];
  const same = (h: DhcpHost): boolean => h.mac.toLowerCase() === host.mac.toLowerCase() && h.ip === host.ip;
  if (op === 'add') {
    const clash = hosts.find((h) => h.mac.toLowerCase() === host.mac.toLowerCase() || h.ip === host.ip || (host.name !== undefined && h.name === host.name));
    if (clash) {
      if (same(clash)) return def; // the adapter treats an entry that is there as done
      throw failed(`there is an existing dhcp host entry in network '${def.name}' that matches "<host mac='${host.mac}' name='${host.name ?? '(null)'}' ip='${host.ip}'/>"`);
    }
    return { ...def, dhcp: { start: def.dhcp?.start ?? '', end: def.dhcp?.end ?? '', hosts: [...hosts, { ...host }] } };
  }
  // Delete: every attribute given must match (libvirt compares MACs as written).
  const i = hosts.findIndex((h) => h.mac === host.mac && h.ip === host.ip && (host.name === undefined || h.name === host.name));
  if (i < 0) {
    if (hosts.some(same)) throw failed(`couldn't locate a matching dhcp host entry in network '${def.name}'`);
    return def; // gone already
  }
  const rest = hosts.filter((_h, j) => j !== i);
  const dhcp = def.dhcp!;
  if (rest.length === 0 && dhcp.start === '' && dhcp.end === '') {
    const { dhcp: _d, ...withoutDhcp } = def;
    return withoutDhcp;
  }
  return { ...def, dhcp: { ...dhcp, hosts: rest } };
}
