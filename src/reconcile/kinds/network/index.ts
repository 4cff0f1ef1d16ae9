/**
 * Network: a libvirt network (isolated, NAT, or attached to a host bridge). Identity: its libvirt
 * UUID. DHCP static hosts and autostart change live; mode, bridge, CIDR and DHCP range replace
 * the network (the VMs attached to it are stopped before and started after).
 */
import { resourceKey } from '../../../model/kinds.js';
import type { DhcpHost, NetworkDef, NetworkDetail } from '../../../model/definitions.js';
import { canonicalJson, desiredBase, type DesiredBase } from '../../core/resource.js';
import {
  appliedConfig, change, compareConfigs, runtimeDifferences, conflictOrAdopt, createReason, exactDrift, fieldChanges, interruptedOr, isMissingDrift, recordedConfig,
  type FieldChange,
} from '../../core/change.js';
import { ownershipById } from '../../core/ownership.js';
import { listedState, readListed, uuidToDefine } from '../common.js';
import { definitionOf, type Observed } from '../../core/observed.js';
import type { ExactSpec, KindHandler } from '../../core/kind.js';

export interface NetworkConfig {
  mode: 'isolated' | 'nat' | 'bridge';
  bridge?: string;
  cidr?: string;
  ipv4?: { address: string; prefix: number };
  dhcpRange?: { start: string; end: string };
  dhcpHosts: { mac: string; ip: string; name?: string }[];
}
export type DesiredNetwork = DesiredBase<'Network', NetworkConfig> & { autostart: boolean };

export type NetworkOp =
  /** `markerOnly`: adopting a network that is already what the manifest declares: only the owner marker is written into its definition. */
  | { op: 'network.ensure'; define: boolean; start: boolean; autostart?: boolean; addHosts: DhcpHost[]; deleteHosts: DhcpHost[]; markerOnly?: boolean }
  | { op: 'network.delete' };

function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}
function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/** Host side address of a network: the first usable address of the CIDR. */
export function cidrHostAddress(cidr: string): { address: string; prefix: number } {
  const [ip, bits] = cidr.split('/');
  const prefix = Number(bits);
  const size = 2 ** (32 - prefix);
  const base = Math.floor(ipToInt(ip ?? '0.0.0.0') / size) * size;
  return { address: intToIp(base + 1), prefix };
}

export function networkDef(r: DesiredNetwork, uuid?: string): NetworkDef {
  const c = r.config;
  return {
    name: r.name,
    uuid,
    mode: c.mode,
    ...(c.bridge ? { bridge: c.bridge } : {}),
    ...(c.ipv4 ? { ipv4: c.ipv4 } : {}),
    ...(c.dhcpRange ? { dhcp: { ...c.dhcpRange, hosts: c.dhcpHosts } } : {}),
    marker: { kind: r.kind, name: r.name, specHash: r.specHash },
  };
}

/** The host's definition in the shape of a desired config (for a field-by-field comparison). */
function actualConfig(actual: NetworkDetail, desired: NetworkConfig): NetworkConfig {
  const ipv4 = actual.ipv4;
  const sameIp = canonicalJson(ipv4) === canonicalJson(desired.ipv4);
  return {
    // A mode virtform does not model (`route`, set outside virtform) stays as it is: it differs
    // from every declared mode, so the network is corrected to the manifest's mode.
    mode: actual.mode as NetworkConfig['mode'],
    bridge: actual.mode === 'bridge' ? actual.bridge : desired.bridge,
    cidr: ipv4 ? (sameIp ? desired.cidr : `${cidrNetworkAddress(ipv4.address, ipv4.prefix)}/${ipv4.prefix}`) : undefined,
    ipv4: ipv4 ? { address: ipv4.address, prefix: ipv4.prefix } : undefined,
    dhcpRange: actual.dhcp ? { start: actual.dhcp.start, end: actual.dhcp.end } : undefined,
    dhcpHosts: (actual.dhcp?.hosts ?? [])
      .map((h) => ({ mac: h.mac.toLowerCase(), ip: h.ip, ...(h.name ? { name: h.name } : {}) }))
      .sort((a, b) => a.mac.localeCompare(b.mac)),
  };
}

function cidrNetworkAddress(address: string, prefix: number): string {
  const size = 2 ** (32 - prefix);
  return intToIp(Math.floor(ipToInt(address) / size) * size);
}

function subnetOf(ip: { address: string; prefix: number }): [number, number] {
  const size = 2 ** (32 - ip.prefix);
  const start = Math.floor(ipToInt(ip.address) / size) * size;
  return [start, start + size - 1];
}

/**
 * Another network on the host (managed or not) whose IPv4 subnet overlaps the one a network is
 * about to be created with: libvirt would refuse to start it, so it is a conflict in the plan.
 */
function overlappingNetwork(r: DesiredNetwork, observed: Observed): string | undefined {
  if (!r.config.ipv4) return undefined;
  const [a0, a1] = subnetOf(r.config.ipv4);
  for (const name of observed.networks.keys()) {
    if (name === r.name) continue;
    const other = definitionOf(observed, 'Network', resourceKey('Network', name, r.host));
    if (!other?.ipv4) continue;
    const [b0, b1] = subnetOf(other.ipv4);
    if (a0 <= b1 && b0 <= a1) {
      return `CIDR ${r.config.cidr} overlaps network ${name} (${intToIp(b0)}/${other.ipv4.prefix}) on the host; choose another CIDR`;
    }
  }
  return undefined;
}

function hostKey(h: DhcpHost): string {
  return canonicalJson({ mac: h.mac.toLowerCase(), ip: h.ip, name: h.name });
}

/**
 * Exact drift of networks. Nothing is ignored: measured on libvirt 9.0, the inactive XML does not
 * change when the network stops and starts (the bridge name and MAC are written at define time).
 * The field-level comparison explains the forward mode, the bridge, the first `<ip>` and its
 * first DHCP range and its static hosts.
 */
export const NETWORK_EXACT: ExactSpec = {
  object: 'network',
  ignore: [],
  modelled: [/^forward(\/|$)/, /^bridge$/, /^ip$/, /^ip\/dhcp$/, /^ip\/dhcp\/range$/, /^ip\/dhcp\/host\[/],
};

export const networkKind: KindHandler<DesiredNetwork, NetworkOp> = {
  kind: 'Network',
  exact: NETWORK_EXACT,
  ops: {
    'network.ensure': { label: 'ensure network', teardown: false },
    'network.delete': { label: 'delete network', teardown: true },
  },
  fields: [
    { field: 'mode', manifest: 'spec.mode', effect: 'replace' },
    { field: 'bridge', manifest: 'spec.bridge', effect: 'replace' },
    { field: 'cidr', manifest: 'spec.cidr', effect: 'replace' },
    { field: 'ipv4', manifest: 'spec.cidr', effect: 'replace' },
    { field: 'dhcpRange', manifest: 'spec.dhcp.start/end', effect: 'replace' },
    { field: 'dhcpHosts', manifest: 'spec.dhcp.hosts', effect: 'live' },
  ],

  build(state, ctx) {
    return state.networks.map((n) => {
      const dhcp = n.spec.dhcp;
      const config: NetworkConfig = {
        mode: n.spec.mode as NetworkConfig['mode'],
        bridge: n.spec.bridge,
        cidr: n.spec.cidr,
        ipv4: n.spec.cidr ? cidrHostAddress(n.spec.cidr) : undefined,
        dhcpRange: dhcp ? { start: dhcp.start, end: dhcp.end } : undefined,
        dhcpHosts: [...(dhcp?.hosts ?? [])]
          .map((h) => ({ mac: h.mac.toLowerCase(), ip: h.ip, ...(h.name ? { name: h.name } : {}) }))
          .sort((a, b) => a.mac.localeCompare(b.mac)),
      };
      return { ...desiredBase('Network', n, ctx.host, config), autostart: n.spec.autostart ?? true };
    });
  },
  dependencies: () => [],
  recordedDependencies: () => [],

  identity: (observed, name) => observed.networks.get(name)?.uuid,

  servesDhcp: (c) => {
    const cfg = c as { mode?: string; dhcpRange?: unknown; dhcpHosts?: unknown[] } | undefined;
    return !!cfg && cfg.mode !== 'bridge' && (!!cfg.dhcpRange || (cfg.dhcpHosts?.length ?? 0) > 0);
  },
  readsAllListed: (snapshot) => snapshot.networks.map((o) => o.name),
  readDefinitions: (host, observed, wanted) => readListed(observed.networks, wanted, (l, u) => host.definitions.networks(l, u), (observed.unreadable ??= new Map())),

  diff(r, { observed }) {
    const key = r.key;
    const own = ownershipById(observed, r.kind, r.name, observed.networks.get(r.name)?.uuid, key);
    const conflict = conflictOrAdopt(r, own);
    if (conflict) return conflict;
    const obs = observed.networks.get(r.name);
    const actual = definitionOf(observed, 'Network', key);
    const record = observed.records.get(key);
    const full = { ...r.config, autostart: r.autostart };
    if (own.state === 'absent' || !obs || !actual) {
      const clash = overlappingNetwork(r, observed);
      if (clash) return change(r, 'conflict', clash, own);
      return change(r, 'create', createReason(record), own, {
        drift: isMissingDrift(record),
        fields: fieldChanges(undefined, full),
        steps: [{ op: 'network.ensure', define: true, start: true, autostart: r.autostart, addHosts: [], deleteHosts: [] }],
      });
    }
    const adopting = own.state === 'foreign';
    const prev = recordedConfig<NetworkConfig>(observed, key);
    // The host's real definition, not what the DB remembers, is what the manifest is compared with.
    const differences = compareConfigs(networkKind.fields, r.config, actualConfig(actual, r.config), appliedConfig(observed, r));
    const immutable = differences.filter((d) => d.effect === 'replace');
    if (immutable.length > 0) {
      const clash = overlappingNetwork(r, observed);
      if (clash) return change(r, 'conflict', clash, own);
      const drift = immutable.every((d) => d.drift);
      return change(r, 'replace', drift
        ? 'mode, bridge, CIDR or DHCP range was changed outside virtform (drift): the network is recreated'
        : 'mode, bridge, CIDR or DHCP range changed: the network is recreated', own, {
        fields: differences.flatMap((d) => d.changes), previous: prev, drift,
        notes: ['VMs attached to it are stopped before and started after'],
        steps: [
          { op: 'network.delete' },
          { op: 'network.ensure', define: true, start: true, autostart: r.autostart, addHosts: [], deleteHosts: [] },
        ],
      });
    }
    const fields: FieldChange[] = [];
    const reasons: string[] = [];
    let drift = false;
    // DHCP hosts are made equal to the manifest's (absolute, from the host's real list).
    const hosts = differences.find((d) => d.field === 'dhcpHosts');
    const current = actualConfig(actual, r.config).dhcpHosts;
    const want = new Set(r.config.dhcpHosts.map(hostKey));
    const have = new Set(current.map(hostKey));
    const addHosts = r.config.dhcpHosts.filter((h) => !have.has(hostKey(h)));
    const deleteHosts = current.filter((h) => !want.has(hostKey(h)));
    if (hosts) {
      fields.push(...hosts.changes);
      reasons.push(hosts.drift ? 'DHCP host entries changed outside virtform (drift): updated live' : 'DHCP host entries changed (updated live)');
      drift ||= hosts.drift;
    }
    // Adopting, the owner marker is gone, or an interrupted run defined it: write virtform's
    // definition (with its marker). A definition an interrupted run left is written again rather
    // than trusted: libvirt can hand two networks defined at the same moment the same bridge name
    // (seen in the crash matrix: "error creating bridge interface virbr1: File exists" on start),
    // and a new definition gets a bridge name that is free now.
    const interrupted = own.state === 'owned' && own.via === 'journal';
    // Exact drift: the whole definition against its baseline; a transient network has no definition left.
    const transient = obs.persistent === false;
    const exact = !adopting && !transient ? exactDrift(observed, key, NETWORK_EXACT, differences.length > 0) : [];
    fields.push(...exact);
    drift ||= exact.length > 0 || (transient && !adopting);
    const define = adopting || !actual.marker || interrupted || transient || exact.length > 0;
    if (define) {
      reasons.push(adopting ? 'adopting existing network (metadata.adopt)'
        : transient ? 'definition removed outside virtform (drift): the active network is defined again'
          : exact.length > 0 ? 'definition changed outside virtform (drift): written again (the running network takes it at its next start)'
            : interruptedOr(own, 'owner marker missing: redefining'));
    }
    // Made by an interrupted run, or applied with another spec that the host already matches: record it.
    const unrecorded = own.state === 'owned' && (own.via === 'journal' || record?.specHash !== r.specHash);
    if (unrecorded && !define && fields.length === 0) reasons.push(interruptedOr(own, 'the host already matches the manifest: recording it'));
    // Adopting: what is left to change are DHCP hosts (the rest replaces the network, above), which
    // are changed live and in the config; the definition is then kept as it is (bridge name, MAC,
    // DNS, … included), with virtform's owner marker added (issue 24).
    const markerOnly = adopting;
    drift = runtimeDifferences('network', obs, r.autostart, fields, reasons, !adopting && !transient && record?.specHash === r.specHash) || drift;
    if (fields.length === 0 && !define && !unrecorded) return undefined;
    return change(r, 'update', reasons.join('; ') || 'autostart differs', own, {
      fields, adopt: adopting, drift,
      notes: markerOnly ? [`adopting writes only virtform's owner marker into the network's definition${fields.some((x) => x.field.startsWith('spec.dhcpHosts')) ? ' (after the DHCP host changes above)' : ''}; the rest stays as it is`] : [],
      steps: [{
        op: 'network.ensure', define, start: !obs.active,
        autostart: obs.autostart !== r.autostart || define ? r.autostart : undefined,
        addHosts, deleteHosts, ...(markerOnly ? { markerOnly: true } : {}),
      }],
    });
  },
  deleteSteps: () => [{ op: 'network.delete' }],

  intent: () => ({}),
  async execute(op, ctx): Promise<void> {
    const { host, step } = ctx;
    switch (op.op) {
      case 'network.ensure': {
        const d = ctx.desired!;
        const define = async (): Promise<void> => {
          // A replaced network keeps its UUID: it is the same network, with another address plan.
          const uuid = await uuidToDefine({ ...ctx, replacing: false }, ctx.observed.networks.get(d.name)?.uuid, () => host.getNetwork(d.name));
          if (op.markerOnly && host.setNetworkMarker && ctx.observed.networks.has(d.name)) await host.setNetworkMarker(d.name, networkDef(d, uuid).marker);
          else await host.defineNetwork(networkDef(d, uuid));
        };
        // A new network is defined, then started. An existing one gets its DHCP hosts changed
        // live and in its config first, and is redefined (adoption, lost marker) after, so the
        // definition never holds hosts the running network lacks.
        // An inactive one is defined before it is started, like a new one.
        const exists = ctx.observed.networks.has(d.name) && !ctx.replacing;
        const defineFirst = op.define && (!exists || op.start);
        if (defineFirst) await define();
        if (op.start || op.define) await host.startNetwork(d.name);
        for (const h of op.deleteHosts) await host.updateNetworkDhcpHost(d.name, 'delete', h);
        for (const h of op.addHosts) await host.updateNetworkDhcpHost(d.name, 'add', h);
        // The persistent definition's owner marker carries the spec applied: after a live change
        // of DHCP hosts it is written again (the running network's copy follows at its next start).
        const hostsChanged = op.addHosts.length + op.deleteHosts.length > 0;
        if (((op.define && !defineFirst) || hostsChanged) && exists) await define();
        if (op.autostart !== undefined) await host.setNetworkAutostart(d.name, op.autostart);
        const detail = op.define ? await host.getNetwork(d.name) : undefined;
        ctx.boundary();
        await ctx.record({
          uuid: detail?.uuid ?? ctx.observed.networks.get(d.name)?.uuid ?? null,
          observedStatus: 'active', desiredState: 'active', config: true,
        });
        return;
      }
      case 'network.delete':
        await host.stopNetwork(step.name);
        await host.undefineNetwork(step.name);
        ctx.boundary();
        await ctx.forgetIfUndeclared();
        return;
    }
  },

  desiredStatus: () => 'active',
  defaultDesiredStatus: 'active',
  observedStatus: (view, r) => listedState(view.snapshot, (s) => s.networks, r.name),
};
