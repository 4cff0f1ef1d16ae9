/**
 * The IP addresses of running VMs, per NIC (matched by MAC), for `status`, the watcher's `/status`
 * and `reconcile --wait`.
 *
 * Where they come from, with a bounded number of host calls:
 *  - NICs on virtform's own networks with DHCP: the network's DHCP leases (virNetworkGetDHCPLeases),
 *    one call per such network that a running VM uses, whatever the number of VMs;
 *  - NICs on any other network (a network virtform does not manage, or one of its `bridge`
 *    networks, where libvirt runs no DHCP): libvirt's interface-address query
 *    (virDomainInterfaceAddresses) of that VM, asking the sources in turn until every such NIC has
 *    an address: `lease` (only when one of those networks has libvirt DHCP), the QEMU guest `agent`
 *    (needs a guest-agent channel and the agent running in the guest; "not configured" /
 *    "not connected" just means no answer from it), then the host's `arp` table. At most three
 *    calls per running VM with such NICs, plus one definition read per other network (whether it
 *    has DHCP).
 * Stopped VMs are not asked about (their addresses are null): a lease outlives its VM.
 *
 * A NIC is *waited for* (`dhcp: true`) when its network hands out addresses by DHCP (a DHCP range or
 * static hosts, not `bridge` mode); `ready` is true for a running VM whose every such NIC has an
 * address. NICs on networks without DHCP may still show an address (agent, ARP), but are never
 * waited for.
 */
import type {
  AddressFamily, DhcpLease, HostPort, HostSnapshot, InterfaceAddressSource, NetworkDetail, ObservedDomain,
} from '../reconcile/ports.js';
import type { DesiredResource } from '../reconcile/desired.js';
import type { ResourceRecord } from '../state/index.js';
import { kindOf } from '../reconcile/kinds/index.js';
import { isResourceKind } from '../model/kinds.js';

export interface NicAddress {
  ip: string;
  prefix: number;
  family: AddressFamily;
  /** `lease`: a DHCP lease (of virtform's network, or via the interface query); `agent`; `arp`. */
  source: InterfaceAddressSource;
  /** The hostname the guest sent with its DHCP request, when known. */
  hostname?: string | null;
}

export interface NicAddresses {
  mac: string;
  network: string;
  /** The network hands out addresses by DHCP: this NIC is waited for and counts for `ready`. */
  dhcp: boolean;
  addresses: NicAddress[];
}

export interface VmAddresses {
  /** The domain is running (only running VMs are asked about). */
  running: boolean;
  /** Per NIC, in the VM's NIC order; null when the VM is not running. */
  nics: NicAddresses[] | null;
  /** Running, and every NIC on a DHCP network has at least one address. */
  ready: boolean;
  /** One line for people: what is waited for, what is not and why. */
  note: string | null;
}

/** A VM to look up: its name and NICs (MAC and libvirt network name). */
export interface AddressTarget {
  name: string;
  nics: { mac: string; network: string }[];
  /** When virtform last started the domain (ms) and the libvirt id it got: older DHCP leases are not its address. */
  startedAt?: { atMs: number; domainId: number };
}

/**
 * The lease time of virtform's networks: they set none, so libvirt's dnsmasq hands out its default
 * (one hour). A lease started at expiry − this.
 */
export const DEFAULT_LEASE_SECONDS = 3600;

/** When virtform last started this VM (its record's `startedAt` fact), if it did. */
export function recordedStart(r: Pick<ResourceRecord, 'details'> | undefined): AddressTarget['startedAt'] {
  const f = (r?.details.facts as { startedAt?: { atMs?: unknown; domainId?: unknown } } | undefined)?.startedAt;
  return f && typeof f.atMs === 'number' && typeof f.domainId === 'number' ? { atMs: f.atMs, domainId: f.domainId } : undefined;
}

/**
 * Whether a lease was handed out before the domain's last start (a previous boot's, still
 * unexpired): it is not the address the guest has now. Known only when virtform started the
 * running domain (same libvirt id); a lease that never expires has no known start.
 */
export function leaseBeforeStart(l: Pick<DhcpLease, 'expiresAt'>, d: Pick<ObservedDomain, 'id'>, started: AddressTarget['startedAt'], leaseSeconds = DEFAULT_LEASE_SECONDS): boolean {
  if (!started || started.domainId !== d.id || !l.expiresAt) return false;
  // Whole seconds on both sides (libvirt reports seconds), one second of slack.
  return l.expiresAt - leaseSeconds < Math.floor(started.atMs / 1000) - 1;
}

export interface AddressReport {
  vms: Map<string, VmAddresses>;
  /** Problems that left some addresses unknown (a network whose leases could not be read, …). */
  errors: string[];
}

type AddressHost = Pick<HostPort, 'networkLeases' | 'domainInterfaceAddresses' | 'definitions'>;

export interface ObserveAddressesOptions {
  /**
   * Domains whose guest agent said "not configured" (no channel), by `name#id`: not asked again
   * (a poll loop passes the same set each time). Agents that are merely not connected yet are.
   */
  noAgent?: Set<string>;
  /** Ask the interface query only for NICs on DHCP networks (the ones a wait is for). */
  waitedOnly?: boolean;
}

/** Whether a network definition hands out addresses by DHCP. */
export function networkHasDhcp(n: Pick<NetworkDetail, 'mode' | 'dhcp'> | undefined): boolean {
  if (!n || n.mode === 'bridge' || !n.dhcp) return false;
  return n.dhcp.start !== '' || n.dhcp.hosts.length > 0;
}

const lower = (m: string): string => m.toLowerCase();
const byFamily = (a: NicAddress, b: NicAddress): number => (a.family === b.family ? 0 : a.family === 'ipv4' ? -1 : 1);

/**
 * Look the addresses of `vms` up on the host. `managed` names virtform's networks with whether each
 * has DHCP (from the manifest or the last applied config). Never throws for a source that cannot
 * answer: what stays unknown is listed in `errors`.
 */
export async function observeAddresses(
  host: AddressHost,
  snapshot: HostSnapshot,
  vms: readonly AddressTarget[],
  managed: ReadonlyMap<string, boolean>,
  opts: ObserveAddressesOptions = {},
): Promise<AddressReport> {
  const errors: string[] = [];
  const domains = new Map(snapshot.domains.map((d) => [d.name, d]));
  const networks = new Map(snapshot.networks.map((n) => [n.name, n]));
  const running = vms.filter((v) => domains.get(v.name)?.active);

  // Which networks have DHCP: virtform's from its config, the others from their definition (one read each).
  const dhcp = new Map<string, boolean>();
  const foreign = new Set<string>();
  for (const v of running) {
    for (const n of v.nics) {
      if (managed.has(n.network)) dhcp.set(n.network, managed.get(n.network)!);
      else foreign.add(n.network);
    }
  }
  const foreignListed = [...foreign].map((n) => networks.get(n)).filter((n): n is NonNullable<typeof n> => !!n);
  if (foreignListed.length > 0) {
    try {
      const defs = await host.definitions.networks(foreignListed);
      for (const n of foreign) dhcp.set(n, networkHasDhcp(defs.get(n)));
    } catch (e) {
      errors.push(`cannot read the definitions of networks ${[...foreign].join(', ')}: ${msg(e)}`);
    }
  }
  for (const n of foreign) if (!dhcp.has(n)) dhcp.set(n, false);

  // Leases of virtform's DHCP networks that running VMs use: one call per network.
  const leaseNets = [...new Set(running.flatMap((v) => v.nics.map((n) => n.network)))]
    .filter((n) => managed.get(n) === true)
    .map((n) => networks.get(n))
    .filter((n): n is NonNullable<typeof n> => !!n);
  const leases = new Map<string, DhcpLease[]>();
  const viaLeases = new Set<string>();
  if (leaseNets.length > 0) {
    try {
      for (const [name, l] of await host.networkLeases(leaseNets)) leases.set(name, l);
      for (const n of leaseNets) viaLeases.add(n.name);
    } catch (e) {
      // e.g. a driver without DHCP leases: ask those VMs through the interface query instead.
      errors.push(`cannot read the DHCP leases of ${leaseNets.map((n) => n.name).join(', ')}: ${msg(e)}`);
    }
  }

  const out = new Map<string, VmAddresses>();
  await Promise.all(vms.map(async (v) => {
    const d = domains.get(v.name);
    if (!d?.active) {
      out.set(v.name, { running: false, nics: null, ready: false, note: d ? 'not running' : 'not on the host' });
      return;
    }
    const nics: NicAddresses[] = v.nics.map((n) => {
      const mac = lower(n.mac);
      const addresses: NicAddress[] = viaLeases.has(n.network)
        ? (leases.get(n.network) ?? []).filter((l) => l.mac === mac && !leaseBeforeStart(l, d, v.startedAt))
          .map((l) => ({ ip: l.ip, prefix: l.prefix, family: l.family, source: 'lease' as const, hostname: l.hostname }))
        : [];
      return { mac, network: n.network, dhcp: dhcp.get(n.network) ?? false, addresses };
    });
    const queried = nics.filter((n) => !viaLeases.has(n.network) && (!opts.waitedOnly || n.dhcp));
    if (queried.length > 0) await queryInterfaces(host, d, queried, dhcp, opts, errors);
    for (const n of nics) n.addresses.sort(byFamily);
    out.set(v.name, { running: true, nics, ready: nics.every((n) => !n.dhcp || n.addresses.length > 0), note: noteOf(nics) });
  }));
  return { vms: out, errors };
}

/** Sources in turn (lease, agent, ARP) until every queried NIC has an address. */
async function queryInterfaces(
  host: AddressHost, d: ObservedDomain, nics: NicAddresses[], dhcp: ReadonlyMap<string, boolean>,
  opts: ObserveAddressesOptions, errors: string[],
): Promise<void> {
  const sources: InterfaceAddressSource[] = [];
  if (nics.some((n) => dhcp.get(n.network))) sources.push('lease');
  sources.push('agent', 'arp');
  for (const source of sources) {
    if (nics.every((n) => n.addresses.length > 0)) return;
    const agentKey = `${d.name}#${d.id}`;
    if (source === 'agent' && opts.noAgent?.has(agentKey)) continue;
    let r;
    try {
      r = await host.domainInterfaceAddresses(d, source);
    } catch (e) {
      errors.push(`VM ${d.name}: interface addresses (${source}): ${msg(e)}`);
      continue;
    }
    if ('unavailable' in r) {
      if (source === 'agent' && /not configured/i.test(r.unavailable)) opts.noAgent?.add(agentKey);
      continue;
    }
    for (const n of nics) {
      if (n.addresses.length > 0) continue;
      const iface = r.interfaces.find((i) => i.mac === n.mac);
      if (!iface) continue;
      n.addresses.push(...iface.addresses
        .filter((a) => !isLinkLocalOrLoopback(a.ip))
        .map((a) => ({ ip: a.ip, prefix: a.prefix, family: a.family, source })));
    }
  }
}

/** The agent reports every address of the guest's interfaces, fe80:: ones too: not useful to reach it. */
function isLinkLocalOrLoopback(ip: string): boolean {
  return /^fe80:/i.test(ip) || /^127\./.test(ip) || ip === '::1';
}

function noteOf(nics: NicAddresses[]): string | null {
  const parts: string[] = [];
  const waiting = nics.filter((n) => n.dhcp && n.addresses.length === 0);
  if (waiting.length > 0) parts.push(`waiting for an address on ${waiting.map((n) => `${n.mac} (${n.network})`).join(', ')}`);
  const notWaited = nics.filter((n) => !n.dhcp);
  if (notWaited.length > 0) parts.push(`not waited for (network without DHCP): ${notWaited.map((n) => `${n.mac} (${n.network})`).join(', ')}`);
  return parts.length > 0 ? parts.join('; ') : null;
}

const msg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** The NICs of a VM as virtform last defined them (its record), by MAC. */
export function recordedNics(r: ResourceRecord): AddressTarget['nics'] {
  const facts = r.details.facts as { nics?: { mac: string; network: string }[] } | undefined;
  if (facts?.nics) return facts.nics.map((n) => ({ mac: lower(n.mac), network: n.network }));
  const config = r.details.config as { nics?: { mac?: string; network: string }[] } | undefined;
  return (config?.nics ?? []).filter((n): n is { mac: string; network: string } => !!n.mac).map((n) => ({ mac: lower(n.mac), network: n.network }));
}

/** virtform's networks with whether each has DHCP: the declared config where given, else the recorded one. */
export function managedNetworks(records: readonly ResourceRecord[], declared?: readonly DesiredResource[]): Map<string, boolean> {
  const out = new Map<string, boolean>();
  const dhcp = (kind: string): ((c: unknown) => boolean) | undefined => (isResourceKind(kind) ? kindOf(kind).servesDhcp : undefined);
  for (const r of records) {
    const has = dhcp(r.kind);
    if (has) out.set(r.name, has(r.details.config));
  }
  for (const d of declared ?? []) {
    const has = dhcp(d.kind);
    if (has) out.set(d.name, has(d.config));
  }
  return out;
}

/** `192.168.1.5/24 (lease)` */
export function addressLabel(a: NicAddress): string {
  return `${a.ip}${a.prefix ? `/${a.prefix}` : ''} (${a.source})`;
}
