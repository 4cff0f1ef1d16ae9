/**
 * VirtualMachine: a libvirt domain. Identity: its libvirt UUID (kept across redefinitions).
 * vCPUs, memory, description, disks and NICs change by redefinition (on a running VM they take
 * effect on the next boot); state (running/stopped) and autostart are reconciled live. A running
 * VM whose volume or network is replaced is stopped first and started again after.
 */
import { resourceKey } from '../../model/kinds.js';
import type { DomainDef, VolumeFormat } from '../../model/definitions.js';
import { parseSize } from '../../manifest/index.js';
import { desiredBase, type DesiredBase } from '../resource.js';
import {
  change, conflictOrAdopt, createReason, fieldChanges, interruptedOr, isMissingDrift, recordedConfig,
  type FieldChange, type ResourceChange,
} from '../change.js';
import { ownershipOf } from '../ownership.js';
import { listedState, readListed, uuidToDefine } from './common.js';
import type { KindHandler } from './types.js';

export type DiskBus = 'virtio' | 'sata' | 'scsi' | 'ide';

export interface VmConfig {
  vcpus: number;
  memoryKiB: number;
  description?: string;
  disks: { volume: string; path: string; format: VolumeFormat; bus: DiskBus; target: string; bootOrder?: number }[];
  nics: { network: string; mac?: string; model: string }[];
}
export type DesiredVm = DesiredBase<'VirtualMachine', VmConfig> & { autostart: boolean; state: 'running' | 'stopped' };

export type VmOp =
  | { op: 'vm.define'; define: boolean; autostart?: boolean }
  | { op: 'vm.start' }
  | { op: 'vm.stop'; graceful: boolean }
  | { op: 'vm.delete' };

/** Disk target names in attach order for a bus: vda, vdb… for virtio; sda… for sata/scsi; hda… for ide. */
export function diskTarget(bus: string, index: number): string {
  const prefix = bus === 'virtio' ? 'vd' : bus === 'ide' ? 'hd' : 'sd';
  let n = index;
  let suffix = '';
  do {
    suffix = String.fromCharCode(97 + (n % 26)) + suffix;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return prefix + suffix;
}

export function domainDef(r: DesiredVm, type: 'kvm' | 'qemu', uuid?: string): DomainDef {
  const c = r.config;
  return {
    name: r.name,
    uuid,
    type,
    vcpus: c.vcpus,
    memoryKiB: c.memoryKiB,
    description: c.description,
    disks: c.disks.map((d) => ({ path: d.path, format: d.format, bus: d.bus, target: d.target, bootOrder: d.bootOrder })),
    nics: c.nics.map((n) => ({ network: n.network, mac: n.mac, model: n.model })),
    marker: { kind: r.kind, name: r.name, specHash: r.specHash },
  };
}

function usedKeys(c: Pick<VmConfig, 'disks' | 'nics'>, host?: string): string[] {
  return [
    ...(c.disks ?? []).map((d) => resourceKey('Volume', d.volume, host)),
    ...(c.nics ?? []).map((n) => resourceKey('Network', n.network, host)),
  ];
}

export const vmKind: KindHandler<DesiredVm, VmOp> = {
  kind: 'VirtualMachine',
  ops: {
    'vm.define': { label: 'define domain', teardown: false },
    'vm.start': { label: 'start domain', teardown: false },
    'vm.stop': { label: 'stop domain', teardown: true },
    'vm.delete': { label: 'delete domain', teardown: true },
  },
  fields: [
    { field: 'vcpus', manifest: 'spec.vcpus', effect: 'restart' },
    { field: 'memoryKiB', manifest: 'spec.memory', unit: 'KiB', effect: 'restart' },
    { field: 'description', manifest: 'spec.description', effect: 'restart' },
    { field: 'disks', manifest: 'spec.disks', effect: 'restart' },
    { field: 'nics', manifest: 'spec.nics', effect: 'restart' },
  ],

  build(state, ctx) {
    return state.vms.map((vm) => {
      const busCounters = new Map<string, number>();
      const config: VmConfig = {
        vcpus: vm.spec.vcpus,
        memoryKiB: Math.floor(parseSize(vm.spec.memory as string | number) / 1024),
        description: vm.spec.description,
        disks: (vm.spec.disks ?? []).map((d) => {
          const bus = (d.bus ?? 'virtio') as DiskBus;
          const family = bus === 'virtio' ? 'vd' : bus === 'ide' ? 'hd' : 'sd';
          const index = busCounters.get(family) ?? 0;
          busCounters.set(family, index + 1);
          return {
            volume: d.volume, path: ctx.volumePath(d.volume), format: ctx.volumeFormat(d.volume), bus,
            target: diskTarget(bus, index), bootOrder: d.boot,
          };
        }),
        nics: (vm.spec.nics ?? []).map((nic) => ({
          network: nic.network, mac: nic.mac?.toLowerCase(), model: nic.model ?? 'virtio',
        })),
      };
      return {
        ...desiredBase('VirtualMachine', vm, ctx.host, config),
        autostart: vm.spec.autostart ?? false, state: (vm.spec.state ?? 'running') as 'running' | 'stopped',
      };
    });
  },
  dependencies: (r) => usedKeys(r.config, r.host),
  recordedDependencies: (previous) => (previous ? usedKeys(previous as VmConfig) : []),

  identity: (observed, name) => observed.domains.get(name)?.uuid,

  readDefinitions: (host, observed, wanted) => readListed(observed.domains, wanted, (l) => host.definitions.domains(l)),

  diff(r, { observed, opts }) {
    const key = r.key;
    const own = ownershipOf(observed, r.kind, r.name, { config: r.config }, key);
    const obs = observed.domains.get(r.name);
    const record = observed.records.get(key);
    const wantRunning = r.state === 'running';
    // Owned, applied with this very spec, in the desired state: nothing to do (a converged host).
    if (own.state === 'owned' && obs && record?.specHash === r.specHash && obs.autostart === r.autostart && obs.active === wantRunning) {
      return undefined;
    }
    const conflict = conflictOrAdopt(r, own);
    if (conflict) return conflict;
    if (own.state === 'absent' || !obs) {
      return change(r, 'create', createReason(record), own, {
        drift: isMissingDrift(record),
        fields: fieldChanges(undefined, { ...r.config, state: r.state, autostart: r.autostart }),
        steps: [
          { op: 'vm.define', define: true, autostart: r.autostart },
          ...(r.state === 'running' ? [{ op: 'vm.start' as const }] : []),
        ],
      });
    }
    const adopting = own.state === 'foreign';
    const prev = recordedConfig<VmConfig>(observed, key);
    const configChanged = adopting || record?.specHash !== r.specHash;
    const fields: FieldChange[] = [];
    const reasons: string[] = [];
    const notes: string[] = [];
    const steps: VmOp[] = [];
    let drift = false;
    if (obs.active && !wantRunning) {
      steps.push({ op: 'vm.stop', graceful: opts.gracefulStop ?? true });
      fields.push({ field: 'spec.state', before: 'running', after: 'stopped' });
      reasons.push('desired stopped');
    }
    if (configChanged || obs.autostart !== r.autostart) {
      steps.push({
        op: 'vm.define', define: configChanged,
        autostart: obs.autostart !== r.autostart || configChanged ? r.autostart : undefined,
      });
      if (configChanged) {
        fields.push(...fieldChanges(prev, r.config));
        reasons.push(adopting ? 'adopting existing domain (metadata.adopt)' : interruptedOr(own, 'definition changed'));
        if (obs.active && wantRunning) notes.push('definition changes take effect on next boot');
      }
      if (obs.autostart !== r.autostart) fields.push({ field: 'spec.autostart', before: obs.autostart, after: r.autostart });
    }
    if (!obs.active && wantRunning) {
      steps.push({ op: 'vm.start' });
      fields.push({ field: 'spec.state', before: 'stopped', after: 'running' });
      reasons.push(record?.desiredState === 'running' ? 'domain is stopped (drift)' : 'desired running');
      drift = record?.desiredState === 'running';
    }
    if (steps.length === 0) return undefined;
    return change(r, 'update', reasons.join('; ') || 'autostart differs', own, { fields, notes, steps, adopt: adopting, drift });
  },

  /**
   * A running VM whose volume or network is replaced is stopped first and started again after.
   * So is one attached to a network virtform starts again after it went down: libvirt does not
   * put a running VM's interfaces back on the bridge of a restarted network.
   */
  afterDiff(vms, observed, changes, opts) {
    const disrupted = new Map<string, string>();
    for (const c of changes) {
      if (c.action === 'replace') disrupted.set(c.key, 'is replaced');
      else if (c.kind === 'Network' && c.steps.some((s) => s.op === 'network.ensure' && s.start)) {
        disrupted.set(c.key, 'is started again (its running VMs lost their connection to it)');
      }
    }
    if (disrupted.size === 0) return;
    for (const r of vms) {
      if (!observed.domains.get(r.name)?.active) continue;
      const uses = usedKeys(r.config, r.host).filter((k) => disrupted.has(k));
      if (uses.length === 0) continue;
      let c: ResourceChange | undefined = changes.find((x) => x.key === r.key);
      if (c?.action === 'conflict') continue;
      if (!c) {
        c = change(r, 'update', '', ownershipOf(observed, r.kind, r.name, { config: r.config }, r.key));
        changes.push(c);
      }
      const why = `restarted because ${uses.map((k) => `${k} ${disrupted.get(k)}`).join(', ')}`;
      c.reason = c.reason ? `${c.reason}; ${why}` : why;
      if (!c.steps.some((s) => s.op === 'vm.stop')) c.steps.unshift({ op: 'vm.stop', graceful: opts.gracefulStop ?? true });
      if (r.state === 'running' && !c.steps.some((s) => s.op === 'vm.start')) c.steps.push({ op: 'vm.start' });
      c.notes = c.notes.filter((n) => !n.includes('next boot'));
    }
  },
  deleteSteps: () => [{ op: 'vm.delete' }],

  intent: () => ({}),
  async execute(op, ctx): Promise<void> {
    const { host, step } = ctx;
    const observedDomain = ctx.observed.domains.get(step.name);
    switch (op.op) {
      case 'vm.define': {
        const d = ctx.desired!;
        let uuid = op.define
          ? await uuidToDefine(ctx, observedDomain?.uuid, () => host.getDomain(d.name))
          : observedDomain?.uuid;
        if (op.define) uuid = (await host.defineDomain(domainDef(d, await host.domainType(), uuid))).uuid;
        if (op.autostart !== undefined) await host.setDomainAutostart(d.name, op.autostart);
        ctx.boundary();
        await ctx.record({
          uuid: uuid ?? null, observedStatus: observedDomain?.active ? 'running' : 'stopped',
          desiredState: d.state, config: op.define,
        });
        return;
      }
      case 'vm.start':
        await host.startDomain(step.name);
        ctx.boundary();
        await ctx.record({ observedStatus: 'running', desiredState: ctx.desired!.state });
        return;
      case 'vm.stop':
        await host.stopDomain(step.name, { graceful: op.graceful, timeoutMs: ctx.shutdownTimeoutMs });
        ctx.boundary();
        await ctx.record({ observedStatus: 'stopped', desiredState: ctx.desired?.state ?? 'stopped' });
        return;
      case 'vm.delete':
        await host.stopDomain(step.name, { graceful: false });
        await host.undefineDomain(step.name);
        ctx.boundary();
        await ctx.forgetIfUndeclared();
        return;
    }
  },

  desiredStatus: (r) => r.state,
  defaultDesiredStatus: 'running',
  observedStatus: (view, r) => listedState(view.snapshot, (s) => s.domains, r.name, 'running', 'stopped'),
};
