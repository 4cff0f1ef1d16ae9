/**
 * Network: a libvirt network (isolated, NAT, or attached to a host bridge). Identity: its libvirt
 * UUID. DHCP static hosts and autostart change live; mode, bridge, CIDR and DHCP range replace
 * the network (the VMs attached to it are stopped before and started after).
 */
import { resourceKey } from '../../model/kinds.js';
import type { DhcpHost, NetworkDef } from '../../model/definitions.js';
import { canonicalJson, hashConfig, type DesiredBase } from '../resource.js';
import {
  change, conflictOrAdopt, createReason, differsIn, fieldChanges, interruptedOr, isMissingDrift, recordedConfig,
  type FieldChange,
} from '../change.js';
import { ownershipOf } from '../ownership.js';
import { listedState, readListed, uuidToDefine } from './common.js';
import type { KindHandler } from './types.js';

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
  | { op: 'network.ensure'; define: boolean; start: boolean; autostart?: boolean; addHosts: DhcpHost[]; deleteHosts: DhcpHost[] }
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

function hostKey(h: DhcpHost): string {
  return canonicalJson({ mac: h.mac.toLowerCase(), ip: h.ip, name: h.name });
}

/** Fields whose change recreates the network. */
const IMMUTABLE = ['mode', 'bridge', 'cidr', 'ipv4', 'dhcpRange'] as const;

export const networkKind: KindHandler<DesiredNetwork, NetworkOp> = {
  kind: 'Network',
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
      return {
        kind: 'Network', name: n.metadata.name, host: ctx.host, key: resourceKey('Network', n.metadata.name, ctx.host),
        adopt: n.metadata.adopt === true, labels: { ...(n.metadata.labels ?? {}) },
        config, specHash: hashConfig(config), autostart: n.spec.autostart ?? true, source: n.source,
      };
    });
  },
  dependencies: () => [],
  recordedDependencies: () => [],

  identity: (observed, name) => observed.networks.get(name)?.uuid,

  readDefinitions: (host, observed, wanted) => readListed(observed.networks, wanted, (l) => host.definitions.networks(l)),

  diff(r, { observed }) {
    const key = r.key;
    const own = ownershipOf(observed, r.kind, r.name, { config: r.config }, key);
    const conflict = conflictOrAdopt(r, own);
    if (conflict) return conflict;
    const obs = observed.networks.get(r.name);
    const record = observed.records.get(key);
    const full = { ...r.config, autostart: r.autostart };
    if (own.state === 'absent' || !obs) {
      return change(r, 'create', createReason(record), own, {
        drift: isMissingDrift(record),
        fields: fieldChanges(undefined, full),
        steps: [{ op: 'network.ensure', define: true, start: true, autostart: r.autostart, addHosts: [], deleteHosts: [] }],
      });
    }
    const adopting = own.state === 'foreign';
    const prev = recordedConfig<NetworkConfig>(observed, key);
    const configChanged = adopting || record?.specHash !== r.specHash;
    if (configChanged && prev && differsIn(prev, r.config, IMMUTABLE)) {
      return change(r, 'replace', 'mode, bridge, CIDR or DHCP range changed: the network is recreated', own, {
        fields: fieldChanges(prev, r.config), previous: prev,
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
    let addHosts: DhcpHost[] = [];
    let deleteHosts: DhcpHost[] = [];
    let define = false;
    if (configChanged) {
      if (prev) {
        const before = new Set(prev.dhcpHosts.map(hostKey));
        const after = new Set(r.config.dhcpHosts.map(hostKey));
        addHosts = r.config.dhcpHosts.filter((h) => !before.has(hostKey(h)));
        deleteHosts = prev.dhcpHosts.filter((h) => !after.has(hostKey(h)));
        fields.push(...fieldChanges(prev, r.config));
        reasons.push('DHCP host entries changed (updated live)');
      } else {
        define = true; // adopted: take it over with our definition
        reasons.push(adopting ? 'adopting existing network (metadata.adopt)' : interruptedOr(own, 'recording network'));
      }
    }
    if (!obs.active) {
      fields.push({ field: 'status', before: 'inactive', after: 'active' });
      reasons.push('network is inactive (drift)');
      drift = true;
    }
    if (obs.autostart !== r.autostart) fields.push({ field: 'spec.autostart', before: obs.autostart, after: r.autostart });
    if (fields.length === 0 && !configChanged) return undefined;
    return change(r, 'update', reasons.join('; ') || 'autostart differs', own, {
      fields, adopt: adopting, drift,
      steps: [{
        op: 'network.ensure', define, start: !obs.active,
        autostart: obs.autostart !== r.autostart || define ? r.autostart : undefined,
        addHosts, deleteHosts,
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
        if (op.define) {
          const uuid = await uuidToDefine(ctx, ctx.observed.networks.get(d.name)?.uuid, () => host.getNetwork(d.name));
          await host.defineNetwork(networkDef(d, uuid));
        }
        if (op.start || op.define) await host.startNetwork(d.name);
        for (const h of op.deleteHosts) await host.updateNetworkDhcpHost(d.name, 'delete', h);
        for (const h of op.addHosts) await host.updateNetworkDhcpHost(d.name, 'add', h);
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
  observedStatus: (view, r) => listedState(view.snapshot, (s) => s.networks, r.name),
};
