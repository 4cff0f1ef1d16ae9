/**
 * HostPort over libvirt: the reconciler's port implemented with virtform's RPC client and XML
 * builders. This is the only reconcile file that knows about libvirt calls and XML.
 *
 * Observation uses bulk list calls only (a constant number per snapshot). Operations are made
 * idempotent here: starting what runs, stopping what is stopped and deleting what is gone succeed
 * without a change, so a step re-run after a crash completes instead of failing.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import {
  ConnectionError,
  LibvirtClient,
  LibvirtError,
  type LibvirtStream,
  VIR_DOMAIN_CONSOLE_FORCE,
  parseUri,
  redactUri,
  VIR_CONNECT_LIST_DOMAINS_AUTOSTART,
  VIR_CONNECT_LIST_NETWORKS_ACTIVE,
  VIR_CONNECT_LIST_NETWORKS_AUTOSTART,
  VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE,
  VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART,
  VIR_CONNECT_LIST_STORAGE_POOLS_TRANSIENT,
  VIR_CONNECT_LIST_DOMAINS_TRANSIENT,
  VIR_CONNECT_LIST_NETWORKS_TRANSIENT,
  VIR_DOMAIN_UNDEFINE_NVRAM,
  VIR_DOMAIN_XML_INACTIVE,
  VIR_NETWORK_XML_INACTIVE,
  VIR_STORAGE_XML_INACTIVE,
  VIR_DOMAIN_UNDEFINE_MANAGED_SAVE,
  VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
  VIR_DOMAIN_SNAPSHOT_CREATE_VALIDATE,
  VIR_NETWORK_SECTION_IP_DHCP_HOST,
  VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
  VIR_NETWORK_UPDATE_COMMAND_DELETE,
  VIR_ERR_NO_DOMAIN,
  VIR_ERR_NO_NETWORK,
  VIR_ERR_NO_STORAGE_POOL,
  VIR_ERR_NO_STORAGE_VOL,
  VIR_ERR_NO_DOMAIN_SNAPSHOT,
  VIR_ERR_DOM_EXIST,
  VIR_ERR_NETWORK_EXIST,
  VIR_ERR_STORAGE_VOL_EXIST,
  VIR_ERR_XML_ERROR,
  VIR_ERR_XML_INVALID_SCHEMA,
  VIR_ERR_INVALID_ARG,
  VIR_ERR_CONFIG_UNSUPPORTED,
  VIR_ERR_NO_SUPPORT,
  VIR_ERR_INVALID_MAC,
  VIR_ERR_ARGUMENT_UNSUPPORTED,
  VIR_ERR_OPERATION_UNSUPPORTED,
  VIR_ERR_ACCESS_DENIED,
  VIR_DOMAIN_AFFECT_CONFIG,
  VIR_DOMAIN_AFFECT_LIVE,
  VIR_DOMAIN_BLOCK_RESIZE_BYTES,
  VIR_DOMAIN_METADATA_DESCRIPTION,
  VIR_DOMAIN_METADATA_ELEMENT,
  VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM,
  VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM,
  VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
  VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
  VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
  VIR_IP_ADDR_TYPE_IPV6,
  VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON,
  VIR_DOMAIN_MEMORY_STAT_NR,
  VIR_ERR_AGENT_UNRESPONSIVE,
  VIR_ERR_AGENT_UNSYNCED,
  VIR_ERR_OPERATION_INVALID,
  VIR_ERR_OPERATION_FAILED,
  VIR_ERR_SYSTEM_ERROR,
  VIR_ERR_INTERNAL_ERROR,
  type Domain,
  type Network,
  type StoragePool,
  type StorageVol,
  type RemoteTypedParamValue,
} from '../../libvirt/index.js';
import {
  buildDhcpHostXml,
  buildDomainXml,
  buildNetworkXml,
  buildPoolXml,
  buildVolumeXml,
  buildSnapshotXml,
  chooseDomainType,
  type DomainTypeChoice,
  LibvirtXmlError,
  capabilitiesHostUuid,
  parseCapabilities,
  parseDomainCapabilities,
  parseDomainXml,
  parseNetworkXml,
  parsePoolXml,
  parseVolumeXml,
  parseSnapshotXml,
} from '../../libvirt/xml/index.js';
import { xmlSha256 } from '../../libvirt/xml/compare.js';
import { markerElementXml, OWNER_NS, OWNER_PREFIX, withMarker } from '../../libvirt/xml/marker.js';
import {
  HostError, MutationRefusedError, type MutationGuard,
  type DhcpHost, type DhcpLease, type OwnerMarker, type DomainAddresses, type InterfaceAddressSource, type ObservedDomain, type ObservedNetwork,
  type DomainCapabilities, type DomainDef, type DomainDetail, type DomainLifecycleEvent, type HostCallInfo, type HostIdentity, type HostPort,
  type DefinitionRead, type HostDefinitions, type HostSnapshot, type NodeInfo, type ObservedPool, type PoolInfo, type NetworkDef, type NetworkDetail, type ObservedVolume, type PoolDef, type PoolDetail,
  type VolumeDef, type VolumeDetail, type VolumeHole, type SnapshotDef, type SnapshotDetail,
} from '../ports.js';
// hot-plug (issue 24; helper restart)
import type { HotplugDevice } from '../ports.js';
import { buildDiskDeviceXml, buildNicDeviceXml } from '../../libvirt/xml/domain.js';
import { directoryPoolMarker, isLeftoverScratchPool, type ScratchPoolPurpose } from '../../model/definitions.js';

const run = promisify(execFile);

/** Definition reads kept on the wire at once by `definitions` (enough to keep libvirtd's workers busy). */
const DESCRIBE_IN_FLIGHT = 16;

/**
 * A definition's parse, or nothing when its bytes are the ones `read.known` names (the no-op fast
 * path: kept unparsed in `read.unparsed`); its sha256 goes to `read.digests` either way.
 */
function unparsedOr<D>(read: DefinitionRead<D> | undefined, id: string, xml: string, parse: () => D, liveXml?: string): D | null {
  if (!read) return parse();
  const sha = xmlSha256(xml);
  read.digests.set(id, sha);
  if (read.known.get(id) !== sha) return parse();
  read.unparsed.set(id, { xml, parse, ...(liveXml !== undefined ? { liveXml } : {}) });
  return null;
}
/** Runs of zeros at least this long are sent as holes on a sparse upload. */
const UPLOAD_HOLE_MIN = 64 * 1024;

const VIR_NETWORK_UPDATE_AFFECT_LIVE = 1;
const VIR_NETWORK_UPDATE_AFFECT_CONFIG = 2;
/** virDomainDefineXMLFlags: libvirt checks the whole definition against its RNG schema (an unknown attribute in an extra device is refused, not dropped). */
const VIR_DOMAIN_DEFINE_VALIDATE = 1;

const NOT_FOUND = new Set([VIR_ERR_NO_DOMAIN, VIR_ERR_NO_NETWORK, VIR_ERR_NO_STORAGE_POOL, VIR_ERR_NO_STORAGE_VOL, VIR_ERR_NO_DOMAIN_SNAPSHOT]);
const EXISTS = new Set([VIR_ERR_DOM_EXIST, VIR_ERR_NETWORK_EXIST, VIR_ERR_STORAGE_VOL_EXIST]);
/** Errors that retrying cannot cure: the request itself is wrong for this host. */
const INVALID = new Set([
  VIR_ERR_XML_ERROR, VIR_ERR_XML_INVALID_SCHEMA, VIR_ERR_INVALID_ARG, VIR_ERR_CONFIG_UNSUPPORTED, VIR_ERR_NO_SUPPORT,
  VIR_ERR_INVALID_MAC, VIR_ERR_ARGUMENT_UNSUPPORTED, VIR_ERR_OPERATION_UNSUPPORTED, VIR_ERR_ACCESS_DENIED,
]);

/** Errors of the interface-address query that mean "this source cannot answer for this domain now". */
const UNAVAILABLE = new Set([VIR_ERR_AGENT_UNRESPONSIVE, VIR_ERR_AGENT_UNSYNCED, VIR_ERR_ARGUMENT_UNSUPPORTED, VIR_ERR_OPERATION_INVALID]);

/** libvirt errors → HostError codes the reconciler tells apart. */
export function toHostError(e: unknown, context: string): HostError {
  if (e instanceof HostError) return e;
  if (e instanceof LibvirtError) {
    const code = NOT_FOUND.has(e.code) ? 'not-found' : EXISTS.has(e.code) ? 'already-exists' : INVALID.has(e.code) ? 'invalid' : 'operation-failed';
    return new HostError(code, `${context}: ${e.message}`, { code: e.code, domain: e.domain });
  }
  if (e instanceof ConnectionError) return new HostError('connection', `${context}: ${e.message}`);
  // A definition the XML builder rejects (vcpus 0, prefix > 32, duplicate disk target…) is bad
  // input, like libvirt's own XML errors: not worth retrying.
  if (e instanceof LibvirtXmlError && e.code === 'invalid-input') return new HostError('invalid', `${context}: ${e.message}`);
  return new HostError('unknown', `${context}: ${e instanceof Error ? e.message : String(e)}`);
}

/** How many CPUs a libvirt CPU list names (`0-3,5` → 5). */
export function cpuListCount(list: string): number {
  let n = 0;
  for (const part of list.split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) continue;
    n += m[2] !== undefined ? Number(m[2]) - Number(m[1]) + 1 : 1;
  }
  return n;
}

const ENOENT = 2;
const ENOTEMPTY = 39;
/**
 * A system error of the daemon: "No such file or directory". The errno travels in the RPC error's
 * int1 (virReportSystemError), so the code decides, not the message (translated by the daemon's locale).
 */
function isNoSuchFile(e: unknown): boolean {
  return e instanceof LibvirtError && e.code === VIR_ERR_SYSTEM_ERROR && e.int1 === ENOENT;
}

function isNotFound(e: unknown): boolean {
  return e instanceof LibvirtError && NOT_FOUND.has(e.code);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface LibvirtHostOptions {
  /** Domain type of the domains virtform defines: `auto` (default) is kvm when offered, else qemu (TCG). */
  domainType?: DomainTypeChoice;
}

/** A fresh name for a scratch pool ({@link isScratchPoolName}): 12 random hex digits. */
function scratchPoolName(purpose: ScratchPoolPurpose): string {
  return `virtform-${purpose}-${randomBytes(6).toString('hex')}`;
}

export class LibvirtHost implements HostPort {
  private mutations = 0;
  private domainTypeCache: Promise<'kvm' | 'qemu'> | undefined;
  private domainCapsCache: Promise<DomainCapabilities | null> | undefined;
  private readonly domainTypeChoice: DomainTypeChoice;

  constructor(readonly client: LibvirtClient, opts: LibvirtHostOptions = {}) {
    this.domainTypeChoice = opts.domainType ?? 'auto';
  }

  /** Asked before every mutating operation and libvirt procedure (see HostPort.setMutationGuard). */
  private guard: MutationGuard | undefined;

  /** Wrap one port operation: refuse it when the guard says so, count it if it mutates and translate errors. */
  private async op<T>(context: string, mutating: boolean, fn: () => Promise<T>): Promise<T> {
    if (mutating) {
      const refused = this.guard?.();
      if (refused) throw new MutationRefusedError(`${context}: not done: ${refused}`);
      this.mutations += 1;
    }
    try {
      return await fn();
    } catch (e) {
      throw toHostError(e, context);
    }
  }

  mutationCount(): number {
    return this.mutations;
  }

  domainType(): Promise<'kvm' | 'qemu'> {
    // Cached on success only: a failed lookup (e.g. a dropped connection) is asked again next time.
    this.domainTypeCache ??= this.op('capabilities', false, async () => {
      const caps = parseCapabilities(await this.client.connectGetCapabilities());
      // libvirt's test driver offers only its own 'test' type and accepts type='qemu' documents.
      const testDriver = caps.x86_64HvmDomainTypes.length === 0 && /^test[+:]/.test(this.client.uri);
      try {
        return chooseDomainType(testDriver ? { x86_64HvmDomainTypes: ['qemu'] } : caps, this.domainTypeChoice);
      } catch (e) {
        // Not a passing condition: retrying will not make the host offer another type.
        throw new HostError('invalid', e instanceof Error ? e.message : String(e));
      }
    });
    // safe-catch: only clears the cache; the caller awaits the same promise and gets the error
    this.domainTypeCache.catch(() => {
      this.domainTypeCache = undefined;
    });
    return this.domainTypeCache;
  }

  domainCapabilities(): Promise<DomainCapabilities | null> {
    // Asked once per connection (a few ms: libvirt caches QEMU's probe), cached on success only.
    this.domainCapsCache ??= (async () => {
      const virttype = await this.domainType();
      return this.op('domain capabilities', false, async () => {
        try {
          return parseDomainCapabilities(await this.client.connectGetDomainCapabilities(null, 'x86_64', null, virttype, 0));
        } catch (e) {
          // libvirt's test driver has no domain capabilities.
          if (e instanceof LibvirtError && e.code === VIR_ERR_NO_SUPPORT) return null;
          throw e;
        }
      });
    })();
    // safe-catch: only clears the cache; the caller awaits the same promise and gets the error
    this.domainCapsCache.catch(() => {
      this.domainCapsCache = undefined;
    });
    return this.domainCapsCache;
  }

  hostIdentity(): Promise<HostIdentity> {
    return this.op('host identity', false, async () => {
      const [caps, hostname] = await Promise.all([this.client.connectGetCapabilities(), this.client.connectGetHostname()]);
      return { uri: redactUri(this.client.uri), hostname, uuid: capabilitiesHostUuid(caps), driver: parseUri(this.client.uri).driver };
    });
  }

  nodeInfo(): Promise<NodeInfo> {
    return this.op('node info', false, async () => {
      const c = this.client;
      const [info, pools] = await Promise.all([c.remote.nodeGetInfo(), c.connectListAllStoragePools(VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)]);
      const disk: Record<string, number> = {};
      await Promise.all(pools.map(async (p) => {
        // A pool gone or stopped since it was listed has no capacity to offer.
        const i = await c.storagePoolGetInfo(p).catch((e: unknown) => {
          if (e instanceof ConnectionError) throw e;
          return undefined;
        });
        if (i) disk[p.name] = i.capacity;
      }));
      // virNodeGetInfo reports memory in KiB.
      return { memory: Number(info.memory) * 1024, cpus: info.cpus, disk };
    });
  }

  snapshot(): Promise<HostSnapshot> {
    return this.op('list objects', false, async () => {
      const c = this.client;
      // Transient objects (running without a persistent definition) are listed apart: usually none.
      const [domains, autoDomains, networks, activeNets, autoNets, pools, activePools, autoPools, tranD, tranN, tranP] = await Promise.all([
        c.connectListAllDomains(0),
        c.connectListAllDomains(VIR_CONNECT_LIST_DOMAINS_AUTOSTART),
        c.connectListAllNetworks(0),
        c.connectListAllNetworks(VIR_CONNECT_LIST_NETWORKS_ACTIVE),
        c.connectListAllNetworks(VIR_CONNECT_LIST_NETWORKS_AUTOSTART),
        c.connectListAllStoragePools(0),
        c.connectListAllStoragePools(VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE),
        c.connectListAllStoragePools(VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART),
        c.connectListAllDomains(VIR_CONNECT_LIST_DOMAINS_TRANSIENT),
        c.connectListAllNetworks(VIR_CONNECT_LIST_NETWORKS_TRANSIENT),
        c.connectListAllStoragePools(VIR_CONNECT_LIST_STORAGE_POOLS_TRANSIENT),
      ]);
      const ids = (l: { uuid: string }[]): Set<string> => new Set(l.map((x) => x.uuid));
      const autoD = ids(autoDomains);
      const actN = ids(activeNets);
      const autoN = ids(autoNets);
      const actP = ids(activePools);
      const autoP = ids(autoPools);
      const trD = ids(tranD);
      const trN = ids(tranN);
      const trP = ids(tranP);
      const observedPools = pools.map((p) => ({ name: p.name, uuid: p.uuid, active: actP.has(p.uuid), autostart: autoP.has(p.uuid), persistent: !trP.has(p.uuid) }));
      const scratchPools = observedPools.filter(isLeftoverScratchPool);
      return {
        domains: domains.map((d) => ({ name: d.name, uuid: d.uuid, id: d.id, active: d.id !== -1, autostart: autoD.has(d.uuid), persistent: !trD.has(d.uuid) })),
        networks: networks.map((n) => ({ name: n.name, uuid: n.uuid, active: actN.has(n.uuid), autostart: autoN.has(n.uuid), persistent: !trN.has(n.uuid) })),
        pools: scratchPools.length > 0 ? observedPools.filter((p) => !isLeftoverScratchPool(p)) : observedPools,
        ...(scratchPools.length > 0 ? { scratchPools } : {}),
      };
    });
  }

  listVolumes(pool: string): Promise<ObservedVolume[]> {
    return this.op(`list volumes of pool ${pool}`, false, async () => {
      const p = await this.client.storagePoolLookupByName(pool);
      // Re-read the directory so files removed behind libvirt's back are seen (no definition changes).
      // A refresh can fail for a pool whose folder went away (the listing below still answers);
      // a lost connection fails the listing.
      await this.client.storagePoolRefresh(p).catch((e: unknown) => {
        if (e instanceof ConnectionError) throw e;
      });
      const vols = await this.client.storagePoolListAllVolumes(p, 0);
      return vols.map((v) => ({ pool, name: v.name, key: v.key }));
    });
  }

  // --- persistent definitions of listed objects (one call each, pipelined) ---------------------

  readonly definitions: HostDefinitions = {
    domains: (list, unreadable, read) => this.describe('domain definitions', list, unreadable, async (d) => {
      const ref = { name: d.name, uuid: d.uuid, id: d.id };
      const xml = await this.readInactive('domain', (flags) => this.client.domainGetXmlDesc(ref, flags), VIR_DOMAIN_XML_INACTIVE);
      // A running domain's live XML too: a device attached live only is drift (its device list is compared).
      const liveXml = d.active ? await this.client.domainGetXmlDesc(ref, 0) : undefined;
      const parse = (): DomainDetail => ({ ...parseDomainXml(xml), active: d.active, autostart: d.autostart, xml, ...(liveXml !== undefined ? { liveXml } : {}) });
      return unparsedOr(read, d.name, xml, parse, liveXml);
    }),
    networks: (list, unreadable) => this.describe('network definitions', list, unreadable, async (n) => {
      const xml = await this.readInactive('network', (flags) => this.client.networkGetXmlDesc({ name: n.name, uuid: n.uuid }, flags), VIR_NETWORK_XML_INACTIVE);
      return { ...parseNetworkXml(xml), active: n.active, autostart: n.autostart, xml };
    }),
    pools: (list, unreadable) => this.describe('pool definitions', list, unreadable, async (p) => {
      const xml = await this.readInactive('pool', (flags) => this.client.storagePoolGetXmlDesc({ name: p.name, uuid: p.uuid }, flags), VIR_STORAGE_XML_INACTIVE);
      return { ...parsePoolXml(xml), active: p.active, autostart: p.autostart, xml };
    }),
    volumes: (list, unreadable, read) => this.describe('volume definitions', list, unreadable, async (v) => {
      const xml = await this.client.storageVolGetXmlDesc({ pool: v.pool, name: v.name, key: v.key }, 0);
      return unparsedOr(read, v.key, xml, () => parseVolumeXml(xml, v.pool));
    }, (v) => v.key),
  };

  inactiveXml(kind: 'domain' | 'network' | 'pool', name: string): Promise<string | null> {
    return this.op(`read ${kind} ${name} definition`, false, async () => {
      const c = this.client;
      if (kind === 'domain') {
        const d = await this.domain(name);
        return d ? this.maybe(() => this.readInactive('domain', (f) => c.domainGetXmlDesc(d, f), VIR_DOMAIN_XML_INACTIVE)) : null;
      }
      if (kind === 'network') {
        const n = await this.network(name);
        return n ? this.maybe(() => this.readInactive('network', (f) => c.networkGetXmlDesc(n, f), VIR_NETWORK_XML_INACTIVE)) : null;
      }
      const p = await this.pool(name);
      return p ? this.maybe(() => this.readInactive('pool', (f) => c.storagePoolGetXmlDesc(p, f), VIR_STORAGE_XML_INACTIVE)) : null;
    });
  }

  private versionCache: Promise<string> | undefined;
  versionTag(): Promise<string> {
    this.versionCache ??= this.op('versions', false, async () => {
      const [lib, hv] = await Promise.all([this.client.connectGetLibVersion(), this.client.connectGetVersion()]);
      const v = (n: number): string => `${Math.floor(n / 1_000_000)}.${Math.floor(n / 1000) % 1000}.${n % 1000}`;
      return `libvirt ${v(lib)}, hypervisor ${v(hv)}`;
    });
    // safe-catch: forgets a failed read so the next call asks again; the caller gets the error
    this.versionCache.catch(() => {
      this.versionCache = undefined;
    });
    return this.versionCache;
  }

  poolInfo(list: ObservedPool[]): Promise<Map<string, PoolInfo>> {
    return this.describe('pool info', list.filter((p) => p.active), undefined, async (p) => {
      const i = await this.client.storagePoolGetInfo({ name: p.name, uuid: p.uuid });
      return { capacity: Number(i.capacity), allocation: Number(i.allocation), available: Number(i.available) };
    });
  }

  domainAllocations(): Promise<Map<string, { memory: number; vcpus: number }>> {
    return this.op('domain allocations', false, async () => {
      // state | balloon | vcpu; balloon.maximum (KiB) and vcpu.current come from the definition of an inactive domain too.
      const records = await this.client.connectGetAllDomainStats([], 1 | 4 | 8, 0);
      const num = (v: RemoteTypedParamValue): number => {
        switch (v.type) {
          case 1: return v.i;
          case 2: return v.ui;
          case 3: return Number(v.l);
          case 4: return Number(v.ul);
          case 5: return v.d;
          default: return 0;
        }
      };
      const out = new Map<string, { memory: number; vcpus: number }>();
      const unstated: ObservedDomain[] = [];
      for (const r of records) {
        const p = new Map(r.params.map((x) => [x.field, num(x.value)]));
        const memory = p.get('balloon.maximum');
        const vcpus = p.get('vcpu.current');
        if (memory === undefined || vcpus === undefined) unstated.push({ ...r.dom, active: r.dom.id !== -1, autostart: false });
        else out.set(r.dom.name, { memory: memory * 1024, vcpus });
      }
      // A driver whose statistics leave them out (libvirt's test driver): their definitions, one read each.
      const unreadable = new Map<string, string>();
      for (const [name, d] of await this.definitions.domains(unstated, unreadable)) out.set(name, { memory: d.maxMemoryKiB * 1024, vcpus: d.vcpus });
      return out;
    });
  }

  /** Kinds whose driver refuses the INACTIVE flag (libvirt's test driver, for pools): read without it. */
  private readonly noInactiveFlag = new Set<string>();

  /** The persistent definition where the driver can give it, else the current one. */
  private async readInactive(kind: string, get: (flags: number) => Promise<string>, inactive: number): Promise<string> {
    if (this.noInactiveFlag.has(kind)) return get(0);
    try {
      return await get(inactive);
    } catch (e) {
      if (!(e instanceof LibvirtError && e.code === VIR_ERR_INVALID_ARG && /unsupported flags/.test(e.message))) throw e;
      this.noInactiveFlag.add(kind);
      return get(0);
    }
  }

  /**
   * One read per object, at most DESCRIBE_IN_FLIGHT on the wire at once (libvirtd works on
   * `max_client_requests`, 5 by default, per client and queues the rest); objects that vanished
   * since they were listed are left out. With `unreadable`, an object whose XML the parser refuses
   * is left out and named there with the reason instead of failing the whole read.
   */
  private describe<T extends { name: string }, D>(
    context: string, list: T[], unreadable: Map<string, string> | undefined, read: (o: T) => Promise<D | null>,
    keyOf: (o: T) => string = (o) => o.name,
  ): Promise<Map<string, D>> {
    return this.op(context, false, async () => {
      const out = new Map<string, D>();
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < list.length) {
          const o = list[next++]!;
          let d: D | null;
          try {
            d = await this.maybe(() => read(o));
          } catch (e) {
            if (!(unreadable && e instanceof LibvirtXmlError)) throw e;
            unreadable.set(keyOf(o), `its definition cannot be read: ${e.message}`);
            continue;
          }
          if (d !== null) out.set(keyOf(o), d);
        }
      };
      await Promise.all(Array.from({ length: Math.min(DESCRIBE_IN_FLIGHT, list.length) }, worker));
      return out;
    });
  }

  // --- lookups (null when absent) ------------------------------------------------------------

  private async maybe<T>(fn: () => Promise<T>): Promise<T | null> {
    try {
      return await fn();
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }
  private pool(name: string): Promise<StoragePool | null> {
    return this.maybe(() => this.client.storagePoolLookupByName(name));
  }
  private network(name: string): Promise<Network | null> {
    return this.maybe(() => this.client.networkLookupByName(name));
  }
  private domain(name: string): Promise<Domain | null> {
    return this.maybe(() => this.client.domainLookupByName(name));
  }
  private async volume(pool: string, name: string): Promise<StorageVol | null> {
    const p = await this.pool(pool);
    return p ? this.maybe(() => this.client.storageVolLookupByName(p, name)) : null;
  }

  getPool(name: string): Promise<PoolDetail | null> {
    return this.op(`get pool ${name}`, false, async () => {
      const p = await this.pool(name);
      if (!p) return null;
      const [xml, active, autostart] = await Promise.all([
        this.client.storagePoolGetXmlDesc(p, 0), this.client.storagePoolIsActive(p), this.client.storagePoolGetAutostart(p),
      ]);
      return { ...parsePoolXml(xml), active, autostart };
    });
  }
  getNetwork(name: string): Promise<NetworkDetail | null> {
    return this.op(`get network ${name}`, false, async () => {
      const n = await this.network(name);
      if (!n) return null;
      const [xml, active, autostart] = await Promise.all([
        this.client.networkGetXmlDesc(n, 0), this.client.networkIsActive(n), this.client.networkGetAutostart(n),
      ]);
      return { ...parseNetworkXml(xml), active, autostart };
    });
  }
  getDomain(name: string): Promise<DomainDetail | null> {
    return this.op(`get domain ${name}`, false, async () => {
      const d = await this.domain(name);
      if (!d) return null;
      // The persistent definition, like `definitions`: what a redefinition starts from.
      const [xml, autostart] = await Promise.all([this.client.domainGetXmlDesc(d, VIR_DOMAIN_XML_INACTIVE), this.client.domainGetAutostart(d)]);
      return { ...parseDomainXml(xml), active: d.id !== -1, autostart, xml };
    });
  }
  getRunningDomain(name: string): Promise<(DomainDetail & { id: number }) | null> {
    return this.op(`get running domain ${name}`, false, async () => {
      const d = await this.domain(name);
      if (!d || d.id === -1) return null;
      const [xml, autostart] = await Promise.all([this.client.domainGetXmlDesc(d, 0), this.client.domainGetAutostart(d)]);
      return { ...parseDomainXml(xml), active: true, autostart, id: d.id, xml };
    });
  }
  getVolume(pool: string, name: string): Promise<VolumeDetail | null> {
    return this.op(`get volume ${pool}/${name}`, false, async () => {
      const v = await this.volume(pool, name);
      if (!v) return null;
      return parseVolumeXml(await this.client.storageVolGetXmlDesc(v, 0), pool);
    });
  }

  // --- addresses (read-only) ----------------------------------------------------------------

  networkLeases(list: ObservedNetwork[]): Promise<Map<string, DhcpLease[]>> {
    return this.describe('DHCP leases', list.filter((n) => n.active), undefined, async (n) => {
      const { leases } = await this.client.networkGetDhcpLeases({ name: n.name, uuid: n.uuid }, null, 1, 0);
      return leases.map((l): DhcpLease => ({
        mac: l.mac ? l.mac.toLowerCase() : null,
        ip: l.ipaddr,
        prefix: l.prefix,
        family: l.type === VIR_IP_ADDR_TYPE_IPV6 ? 'ipv6' : 'ipv4',
        hostname: l.hostname || null,
        clientId: l.clientid || null,
        expiresAt: Number(l.expirytime),
        iface: l.iface,
      }));
    });
  }

  domainInterfaceAddresses(domain: ObservedDomain, source: InterfaceAddressSource): Promise<DomainAddresses> {
    const src = source === 'agent' ? VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT
      : source === 'arp' ? VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP : VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE;
    return this.op(`interface addresses (${source}) of domain ${domain.name}`, false, async () => {
      try {
        const ifaces = await this.client.domainInterfaceAddresses({ name: domain.name, uuid: domain.uuid, id: domain.id }, src, 0);
        return {
          interfaces: ifaces.map((i) => ({
            name: i.name,
            mac: i.hwaddr ? i.hwaddr.toLowerCase() : null,
            addresses: i.addrs.map((a) => ({ ip: a.addr, prefix: a.prefix, family: a.type === VIR_IP_ADDR_TYPE_IPV6 ? 'ipv6' as const : 'ipv4' as const })),
          })),
        };
      } catch (e) {
        // "QEMU guest agent is not configured" (no channel: ARGUMENT_UNSUPPORTED), "... is not
        // connected" / does not answer (AGENT_UNRESPONSIVE, AGENT_UNSYNCED), "domain is not
        // running" (OPERATION_INVALID): this source has nothing to say now; not a failure.
        if (e instanceof LibvirtError && UNAVAILABLE.has(e.code)) return { unavailable: e.message };
        // libvirt 9.0 reads the ARP table over netlink and fails on an empty neighbour table
        // ("internal error: wrong nlmsg len"): no ARP entry, so nothing to say.
        if (source === 'arp' && e instanceof LibvirtError && e.code === VIR_ERR_INTERNAL_ERROR) {
          return { unavailable: `the host's ARP table could not be read: ${e.message}` };
        }
        throw e;
      }
    });
  }

  // --- pools ---------------------------------------------------------------------------------

  definePool(def: PoolDef): Promise<void> {
    return this.op(`define pool ${def.name}`, true, async () => {
      await this.client.storagePoolDefineXml(buildPoolXml(def), 0);
    });
  }
  startPool(name: string): Promise<void> {
    return this.op(`start pool ${name}`, true, async () => {
      const p = await this.client.storagePoolLookupByName(name);
      if (await this.client.storagePoolIsActive(p)) return;
      // safe-catch: mkdir of a directory that exists fails; a real problem fails storagePoolCreate just below
      await this.client.storagePoolBuild(p, 0).catch(() => undefined); // mkdir; fine if it exists
      await this.client.storagePoolCreate(p, 0);
    });
  }
  setPoolAutostart(name: string, autostart: boolean): Promise<void> {
    return this.op(`set autostart of pool ${name}`, true, async () => {
      await this.client.storagePoolSetAutostart(await this.client.storagePoolLookupByName(name), autostart);
    });
  }
  buildPool(name: string): Promise<string[]> {
    return this.op(`build pool ${name}`, true, async () => {
      const p = await this.client.storagePoolLookupByName(name);
      if (await this.client.storagePoolIsActive(p)) return [];
      const path = posix.normalize(parsePoolXml(await this.client.storagePoolGetXmlDesc(p, 0)).path);
      // The pool's own directory: starting the pool without building it tells whether it exists.
      try {
        await this.client.storagePoolCreate(p, 0);
        return [];
      } catch (e) {
        if (!isNoSuchFile(e)) throw e;
      }
      // Its parents, upwards to the first that exists: each probed with a transient pool (a
      // remote host's filesystem is reached only through libvirt). Anything but "no such file"
      // counts as existing: a directory is never recorded as created unless it surely was not there.
      const missing = [path];
      for (let dir = posix.dirname(path); dir !== '/'; dir = posix.dirname(dir)) {
        if (await this.dirExists(dir)) break;
        missing.push(dir);
      }
      await this.client.storagePoolBuild(p, 0);
      return missing;
    });
  }

  /** Whether a directory exists on the host: a transient dir pool on it starts (and is stopped at once) or not. */
  private async dirExists(dir: string): Promise<boolean> {
    const name = scratchPoolName('probe');
    try {
      const t = await this.client.storagePoolCreateXml(buildPoolXml({ name, path: dir, marker: directoryPoolMarker(name) }), 0);
      // safe-catch: a transient probe pool; one left running is a leftover scratch pool, removed after the next apply
      await this.client.storagePoolDestroy(t).catch(() => undefined);
      return true;
    } catch (e) {
      return !isNoSuchFile(e);
    }
  }

  removeScratchPools(pools: readonly ObservedPool[]): Promise<string[]> {
    return this.op('remove scratch pools', true, async () => {
      const removed: string[] = [];
      for (const o of pools) {
        const p = await this.pool(o.name);
        if (!p) continue;
        // Only while it is still what a scratch pool leaves (listed again: the listing may be old).
        const [active, persistent] = await Promise.all([this.client.storagePoolIsActive(p), this.client.storagePoolIsPersistent(p)]);
        if (!isLeftoverScratchPool({ name: o.name, active, persistent })) continue;
        // Stopped or forgotten only, never deleted: storagePoolDelete would remove the directory.
        if (active) await this.client.storagePoolDestroy(p);
        else await this.client.storagePoolUndefine(p);
        removed.push(o.name);
      }
      return removed;
    });
  }

  removeDirs(paths: string[]): Promise<{ removed: string[]; kept: { path: string; why: string }[] }> {
    return this.op(`remove directories ${paths.join(', ')}`, true, async () => {
      const removed: string[] = [];
      const kept: { path: string; why: string }[] = [];
      // Deepest first: a parent can only go once its children have.
      for (const dir of [...paths].sort((a, b) => b.split('/').length - a.split('/').length || b.localeCompare(a))) {
        // rmdir through libvirt: an inactive pool on the directory, deleted (rmdir: only when empty), undefined.
        const name = scratchPoolName('rmdir');
        let p;
        try {
          p = await this.client.storagePoolDefineXml(buildPoolXml({ name, path: dir, marker: directoryPoolMarker(name) }), 0);
        } catch (e) {
          kept.push({ path: dir, why: e instanceof Error ? e.message : String(e) });
          continue;
        }
        try {
          await this.client.storagePoolDelete(p, 0);
          removed.push(dir);
        } catch (e) {
          if (isNoSuchFile(e)) removed.push(dir);
          else kept.push({ path: dir, why: e instanceof LibvirtError && e.int1 === ENOTEMPTY ? 'not empty (files virtform did not put there)' : (e as Error).message });
        } finally {
          // safe-catch: the throw-away pool's definition only; the directory's fate is decided above
          await this.client.storagePoolUndefine(p).catch(() => undefined);
        }
      }
      return { removed, kept };
    });
  }

  deletePool(name: string, opts: { deleteDir?: boolean } = {}): Promise<void> {
    return this.op(`delete pool ${name}`, true, async () => {
      const p = await this.pool(name);
      if (!p) return;
      if (await this.client.storagePoolIsActive(p)) await this.client.storagePoolDestroy(p);
      // Removes the directory only when it is empty: files virtform does not know stay.
      // safe-catch: removes the directory only when empty: files virtform does not know stay (by design)
      if (opts.deleteDir) await this.client.storagePoolDelete(p, 0).catch(() => undefined);
      await this.client.storagePoolUndefine(p);
    });
  }

  // --- volumes -------------------------------------------------------------------------------

  createVolume(def: VolumeDef): Promise<VolumeDetail> {
    return this.op(`create volume ${def.pool}/${def.name}`, true, async () => {
      const p = await this.client.storagePoolLookupByName(def.pool);
      const vol = await this.client.storageVolCreateXml(p, buildVolumeXml(def), 0);
      return parseVolumeXml(await this.client.storageVolGetXmlDesc(vol, 0), def.pool);
    });
  }

  uploadVolume(
    pool: string,
    name: string,
    data: AsyncIterable<Uint8Array | VolumeHole>,
    opts: { sparse?: boolean; onProgress?: (bytes: number) => void } = {},
  ): Promise<void> {
    // Not retried by `op`: the data iterable is consumed once; the caller starts over.
    return this.op(`upload volume ${pool}/${name}`, true, async () => {
      const p = await this.client.storagePoolLookupByName(pool);
      const vol = await this.client.storageVolLookupByName(p, name);
      const sparse = opts.sparse !== false;
      const stream = await this.client.storageVolUpload(vol, 0, 0, sparse ? VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM : 0, sparse ? { detectHoles: UPLOAD_HOLE_MIN } : {});
      // pipeline ends when the daemon confirmed the upload, or on the first error of either side
      // (the daemon's, e.g. ENOSPC, possibly while data is still being sent; the source's; the
      // stream's no-progress timeout), and then destroys the other side. A hand-written
      // write/drain loop hung here: a write after the stream had failed waited for a 'drain'
      // that never comes.
      let sent = 0;
      await pipeline(data, async function* (src: AsyncIterable<Uint8Array | VolumeHole>) {
        for await (const chunk of src) {
          if (!(chunk instanceof Uint8Array) && !sparse) throw new Error('internal error: a hole on a non-sparse upload');
          yield chunk;
          sent += chunk instanceof Uint8Array ? chunk.byteLength : chunk.hole;
          opts.onProgress?.(sent);
        }
      }, stream);
    });
  }

  downloadVolume(pool: string, name: string): Promise<AsyncIterable<Uint8Array | VolumeHole>> {
    return this.op(`download volume ${pool}/${name}`, false, async () => {
      const p = await this.client.storagePoolLookupByName(pool);
      const vol = await this.client.storageVolLookupByName(p, name);
      // Holes arrive as `{ hole: n }` objects (VIR_NET_STREAM_HOLE): a sparse copy sends them on as holes.
      const stream = await this.client.storageVolDownload(vol, 0, 0, VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM, { holes: 'objects' });
      return stream as AsyncIterable<Uint8Array | VolumeHole>;
    });
  }

  domainSnapshotCount(name: string): Promise<number> {
    return this.op(`count snapshots of domain ${name}`, false, async () => {
      const d = await this.domain(name);
      return d ? this.client.domainSnapshotNum(d, 0) : 0;
    });
  }

  resizeVolume(pool: string, name: string, capacityBytes: number): Promise<void> {
    return this.op(`resize volume ${pool}/${name}`, true, async () => {
      const p = await this.client.storagePoolLookupByName(pool);
      await this.client.storageVolResize(await this.client.storageVolLookupByName(p, name), capacityBytes, 0);
    });
  }
  deleteVolume(pool: string, name: string): Promise<void> {
    return this.op(`delete volume ${pool}/${name}`, true, async () => {
      const v = await this.volume(pool, name);
      if (v) await this.client.storageVolDelete(v, 0);
    });
  }

  // --- networks ------------------------------------------------------------------------------

  defineNetwork(def: NetworkDef): Promise<void> {
    return this.op(`define network ${def.name}`, true, async () => {
      await this.client.networkDefineXml(buildNetworkXml(def));
    });
  }
  setNetworkMarker(name: string, marker: OwnerMarker): Promise<void> {
    return this.op(`mark network ${name} as virtform's`, true, async () => {
      const xml = await this.client.networkGetXmlDesc(await this.client.networkLookupByName(name), VIR_NETWORK_XML_INACTIVE);
      await this.client.networkDefineXml(withMarker(xml, marker));
    });
  }
  startNetwork(name: string): Promise<void> {
    return this.op(`start network ${name}`, true, async () => {
      const n = await this.client.networkLookupByName(name);
      if (!(await this.client.networkIsActive(n))) await this.client.networkCreate(n);
    });
  }
  stopNetwork(name: string): Promise<void> {
    return this.op(`stop network ${name}`, true, async () => {
      const n = await this.network(name);
      if (n && (await this.client.networkIsActive(n))) await this.client.networkDestroy(n);
    });
  }
  setNetworkAutostart(name: string, autostart: boolean): Promise<void> {
    return this.op(`set autostart of network ${name}`, true, async () => {
      await this.client.networkSetAutostart(await this.client.networkLookupByName(name), autostart);
    });
  }
  updateNetworkDhcpHost(name: string, op: 'add' | 'delete', host: DhcpHost): Promise<void> {
    return this.op(`${op} DHCP host ${host.mac} on network ${name}`, true, async () => {
      const n = await this.client.networkLookupByName(name);
      const active = await this.client.networkIsActive(n);
      const flags = VIR_NETWORK_UPDATE_AFFECT_CONFIG | (active ? VIR_NETWORK_UPDATE_AFFECT_LIVE : 0);
      const command = op === 'add' ? VIR_NETWORK_UPDATE_COMMAND_ADD_LAST : VIR_NETWORK_UPDATE_COMMAND_DELETE;
      try {
        await this.client.networkUpdate(n, command, VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, buildDhcpHostXml(host), flags);
      } catch (e) {
        // Idempotent: adding an entry that is there, or deleting one that is gone, is done already.
        const hosts = parseNetworkXml(await this.client.networkGetXmlDesc(n, 0)).dhcp?.hosts ?? [];
        const present = hosts.some((h) => h.mac.toLowerCase() === host.mac.toLowerCase() && h.ip === host.ip);
        if ((op === 'add') !== present) throw e;
      }
    });
  }
  undefineNetwork(name: string): Promise<void> {
    return this.op(`undefine network ${name}`, true, async () => {
      const n = await this.network(name);
      if (n) await this.client.networkUndefine(n);
    });
  }

  // --- domains -------------------------------------------------------------------------------

  defineDomain(def: DomainDef): Promise<{ uuid: string }> {
    return this.op(`define domain ${def.name}`, true, async () => {
      const d = await this.client.domainDefineXmlFlags(buildDomainXml(def), VIR_DOMAIN_DEFINE_VALIDATE);
      return { uuid: d.uuid };
    });
  }
  startDomain(name: string): Promise<void> {
    return this.op(`start domain ${name}`, true, async () => {
      const d = await this.client.domainLookupByName(name);
      if (!(await this.client.domainIsActive(d))) await this.client.domainCreate(d);
    });
  }
  stopDomain(name: string, opts: { graceful?: boolean; timeoutMs?: number } = {}): Promise<void> {
    return this.op(`stop domain ${name}`, true, async () => {
      const d = await this.domain(name);
      if (!d || !(await this.client.domainIsActive(d))) return;
      const timeoutMs = opts.timeoutMs ?? 60_000;
      if (opts.graceful !== false && timeoutMs > 0) {
        // safe-catch: a guest that refuses ACPI (or is already stopping) is forced off after the timeout below
        await this.client.domainShutdown(d).catch(() => undefined);
        const deadline = Date.now() + timeoutMs;
        while (Date.now() < deadline) {
          if (!(await this.client.domainIsActive(d))) return;
          await sleep(250);
        }
      }
      try {
        await this.client.domainDestroy(d);
      } catch (e) {
        if (await this.client.domainIsActive(d)) throw e; // it stopped meanwhile: done
      }
    });
  }
  setDomainAutostart(name: string, autostart: boolean): Promise<void> {
    return this.op(`set autostart of domain ${name}`, true, async () => {
      await this.client.domainSetAutostart(await this.client.domainLookupByName(name), autostart);
    });
  }
  /** LIVE|CONFIG on a running domain, CONFIG on a stopped one. */
  private async affect(d: Domain): Promise<number> {
    return VIR_DOMAIN_AFFECT_CONFIG | ((await this.client.domainIsActive(d)) ? VIR_DOMAIN_AFFECT_LIVE : 0);
  }
  setDomainVcpus(name: string, vcpus: number): Promise<void> {
    return this.op(`set vCPUs of domain ${name} to ${vcpus}`, true, async () => {
      const d = await this.client.domainLookupByName(name);
      await this.client.domainSetVcpusFlags(d, vcpus, await this.affect(d));
    });
  }
  setDomainMemory(name: string, memoryKiB: number): Promise<void> {
    return this.op(`set memory of domain ${name} to ${memoryKiB} KiB`, true, async () => {
      const d = await this.client.domainLookupByName(name);
      await this.client.domainSetMemoryFlags(d, memoryKiB, await this.affect(d));
    });
  }
  domainBalloonKiB(name: string): Promise<number | null> {
    return this.op(`memory stats of domain ${name}`, false, async () => {
      const d = await this.client.domainLookupByName(name);
      if (d.id === -1) return null;
      const stats = await this.client.domainMemoryStats(d, VIR_DOMAIN_MEMORY_STAT_NR, 0);
      const actual = stats.find((x) => x.tag === VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON);
      return actual ? Number(actual.val) : null;
    });
  }
  guestOnlineVcpus(name: string): Promise<number | null> {
    return this.op(`guest vCPUs of domain ${name}`, false, async () => {
      const d = await this.client.domainLookupByName(name);
      try {
        const params = await this.client.domainGetGuestVcpus(d, 0);
        const online = params.find((p) => p.field === 'online')?.value;
        return online && online.type === 7 ? cpuListCount(online.s) : null;
      } catch (e) {
        // No agent channel, agent not connected or not answering, domain not running: not verifiable now.
        if (e instanceof LibvirtError && UNAVAILABLE.has(e.code)) return null;
        throw e;
      }
    });
  }
  setDomainMarker(name: string, marker: OwnerMarker): Promise<void> {
    return this.op(`mark domain ${name} as virtform's`, true, async () => {
      const d = await this.client.domainLookupByName(name);
      await this.client.domainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, markerElementXml(marker), OWNER_PREFIX, OWNER_NS, await this.affect(d));
    });
  }
  setDomainDescription(name: string, description: string | undefined): Promise<void> {
    return this.op(`set description of domain ${name}`, true, async () => {
      const d = await this.client.domainLookupByName(name);
      await this.client.domainSetMetadata(d, VIR_DOMAIN_METADATA_DESCRIPTION, description || null, null, null, await this.affect(d));
    });
  }
  resizeDomainDisk(name: string, path: string, capacityBytes: number): Promise<void> {
    return this.op(`grow disk ${path} of running domain ${name}`, true, async () => {
      const d = await this.client.domainLookupByName(name);
      await this.client.domainBlockResize(d, path, capacityBytes, VIR_DOMAIN_BLOCK_RESIZE_BYTES);
    });
  }
  // --- hot-plug (issue 24; helper restart) ---------------------------------------------------
  attachDomainDevice(name: string, device: HotplugDevice, where: { live: boolean; config: boolean }): Promise<void> {
    return this.op(`attach ${hotplugText(device)} to domain ${name}`, true, async () => {
      const flags = (where.live ? VIR_DOMAIN_AFFECT_LIVE : 0) | (where.config ? VIR_DOMAIN_AFFECT_CONFIG : 0);
      if (flags === 0) return;
      await this.client.domainAttachDeviceFlags(await this.client.domainLookupByName(name), hotplugXml(device), flags);
    });
  }
  detachDomainDevice(name: string, device: HotplugDevice, where: { live: boolean; config: boolean }): Promise<void> {
    return this.op(`detach ${hotplugText(device)} from domain ${name}`, true, async () => {
      const flags = (where.live ? VIR_DOMAIN_AFFECT_LIVE : 0) | (where.config ? VIR_DOMAIN_AFFECT_CONFIG : 0);
      if (flags === 0) return;
      await this.client.domainDetachDeviceFlags(await this.client.domainLookupByName(name), hotplugXml(device), flags);
    });
  }

  undefineDomain(name: string): Promise<void> {
    return this.op(`undefine domain ${name}`, true, async () => {
      const d = await this.domain(name);
      if (!d) return;
      try {
        await this.client.domainUndefineFlags(
          d, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | VIR_DOMAIN_UNDEFINE_NVRAM,
        );
      } catch (e) {
        if (isNotFound(e)) return;
        await this.client.domainUndefine(d); // drivers without those flags
      }
    });
  }

  // --- snapshots (kind Snapshot, issue 24: helper snaps) --------------------------------------

  listDomainSnapshots(list: ObservedDomain[]): Promise<Map<string, SnapshotDetail[]>> {
    return this.describe('domain snapshots', list, undefined, async (d) => {
      const ref = { name: d.name, uuid: d.uuid, id: d.id };
      const { snapshots } = await this.client.domainListAllSnapshots(ref, 1, 0);
      const out: SnapshotDetail[] = [];
      for (const x of await Promise.all(snapshots.map((s) => this.maybe(() => this.client.domainSnapshotGetXmlDesc(s, 0))))) {
        if (x !== null) out.push(parseSnapshotXml(x, d.name)); // deleted since the listing: left out
      }
      return out;
    });
  }
  getDomainSnapshot(domain: string, name: string): Promise<SnapshotDetail | null> {
    return this.op(`get snapshot ${name} of domain ${domain}`, false, async () => {
      const d = await this.domain(domain);
      const s = d ? await this.maybe(() => this.client.domainSnapshotLookupByName(d, name, 0)) : null;
      const xml = s ? await this.maybe(() => this.client.domainSnapshotGetXmlDesc(s, 0)) : null;
      return xml === null ? null : parseSnapshotXml(xml, domain);
    });
  }
  createDomainSnapshot(def: SnapshotDef): Promise<SnapshotDetail> {
    return this.op(`take snapshot ${def.name} of domain ${def.domain}`, true, async () => {
      const d = await this.client.domainLookupByName(def.domain);
      if (await this.maybe(() => this.client.domainSnapshotLookupByName(d, def.name, 0))) {
        throw new HostError('already-exists', `take snapshot ${def.name} of domain ${def.domain}: a snapshot of that name exists`);
      }
      const s = await this.client.domainSnapshotCreateXml(d, buildSnapshotXml(def), VIR_DOMAIN_SNAPSHOT_CREATE_VALIDATE);
      return parseSnapshotXml(await this.client.domainSnapshotGetXmlDesc(s, 0), def.domain);
    });
  }
  deleteDomainSnapshot(domain: string, name: string): Promise<void> {
    return this.op(`delete snapshot ${name} of domain ${domain}`, true, async () => {
      const d = await this.domain(domain);
      const s = d ? await this.maybe(() => this.client.domainSnapshotLookupByName(d, name, 0)) : null;
      if (!s) return;
      try {
        await this.client.domainSnapshotDelete(s, 0);
      } catch (e) {
        if (!isNotFound(e)) throw e; // deleted meanwhile: done
      }
    });
  }
  revertDomainSnapshot(domain: string, name: string): Promise<void> {
    return this.op(`revert domain ${domain} to snapshot ${name}`, true, async () => {
      const d = await this.client.domainLookupByName(domain);
      const s = await this.client.domainSnapshotLookupByName(d, name, 0);
      await this.client.domainRevertToSnapshot(s, 0);
    });
  }

  // --- events and plumbing -------------------------------------------------------------------

  async subscribeDomainEvents(cb: (e: DomainLifecycleEvent) => void): Promise<() => Promise<void>> {
    const sub = await this.op('register domain events', false, () => this.client.domainEventLifecycleRegister());
    sub.on('event', (ev) => cb({ name: ev.domain.name, uuid: ev.domain.uuid, event: String(ev.eventName), detail: ev.detail }));
    return () => sub.close();
  }
  onDisconnect(cb: (err: Error) => void): void {
    this.client.once('disconnect', (err) => {
      if (err.reason !== 'closed') cb(err);
    });
  }
  setMutationGuard(guard: MutationGuard | undefined): void {
    this.guard = guard;
    // Also each mutating procedure inside an operation (stopDomain's destroy after a graceful wait).
    this.client.beforeMutation = guard
      ? (procedure) => {
        const refused = guard();
        if (refused) throw new MutationRefusedError(`${procedure}: not sent: ${refused}`);
      }
      : undefined;
  }

  setCallObserver(cb: ((info: HostCallInfo) => void) | undefined): void {
    this.client.onCall = cb ? (info) => cb(info) : undefined;
  }
  close(): Promise<void> {
    return this.client.close();
  }
}

/** Why a console cannot be attached: the VM does not exist, does not run, or another client holds its console. */
export class ConsoleError extends Error {
  constructor(readonly reason: 'not-found' | 'not-running' | 'busy' | 'failed', message: string) {
    super(message);
    this.name = 'ConsoleError';
  }
}

/**
 * The serial console of a running domain as a duplex byte stream (libvirt's console stream:
 * virDomainOpenConsole on the first console, works over every transport). `force` takes the
 * console over from another client holding it (VIR_DOMAIN_CONSOLE_FORCE). Not on the HostPort:
 * the reconciler has no use for it.
 */
export async function openDomainConsole(host: LibvirtHost, name: string, opts: { force?: boolean } = {}): Promise<LibvirtStream> {
  const c = host.client;
  let dom;
  try {
    dom = await c.domainLookupByName(name);
  } catch (e) {
    if (isNotFound(e)) throw new ConsoleError('not-found', `no VM (libvirt domain) named ${name} on ${c.uri}`);
    throw toHostError(e, `look up domain ${name}`);
  }
  const state = await c.domainGetState(dom).catch((e: unknown) => {
    throw toHostError(e, `state of domain ${name}`);
  });
  // 1 running, 2 blocked, 3 paused: a console is there (a paused guest just prints nothing).
  if (![1, 2, 3].includes(state.state)) {
    throw new ConsoleError('not-running', `VM ${name} is not running (${state.stateName}): its console exists only while it runs; start it (state: running in its manifest, or virsh start ${name})`);
  }
  try {
    return await c.domainOpenConsole(dom, null, opts.force ? VIR_DOMAIN_CONSOLE_FORCE : 0);
  } catch (e) {
    // libvirt reports a held console as VIR_ERR_OPERATION_FAILED with no code of its own: only the
    // text tells it from other failures of that code.
    if (e instanceof LibvirtError && e.code === VIR_ERR_OPERATION_FAILED && /active console session exists/i.test(e.message)) {
      throw new ConsoleError('busy', `another client holds the console of VM ${name} (libvirt: ${e.message}); --force takes it over`);
    }
    // The domain stopped between the state check and the open (virDomainObjCheckActive).
    if (e instanceof LibvirtError && e.code === VIR_ERR_OPERATION_INVALID) throw new ConsoleError('not-running', `VM ${name} is not running: ${e.message}`);
    throw new ConsoleError('failed', `cannot open the console of VM ${name}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export async function openHost(uri: string, opts: LibvirtHostOptions & { timeoutMs?: number } = {}): Promise<HostPort & LibvirtHost> {
  let client: LibvirtClient;
  try {
    client = await LibvirtClient.connect(uri, { timeoutMs: opts.timeoutMs });
  } catch (e) {
    throw new HostError('connection', `cannot connect to libvirt at ${redactUri(uri)}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return new LibvirtHost(client, opts);
}

// --- hot-plug (issue 24; helper restart) -----------------------------------------------------
function hotplugXml(device: HotplugDevice): string {
  return 'disk' in device ? buildDiskDeviceXml(device.disk) : buildNicDeviceXml(device.nic);
}
function hotplugText(device: HotplugDevice): string {
  return 'disk' in device ? `disk ${device.disk.target} (${device.disk.path})` : `NIC ${device.nic.mac} (network ${device.nic.network})`;
}
