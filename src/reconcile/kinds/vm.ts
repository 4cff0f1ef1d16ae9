/**
 * VirtualMachine: a libvirt domain. Identity: its libvirt UUID (kept across redefinitions).
 *
 * Diff compares the desired config with the domain's real persistent definition (read by observe
 * from the inactive XML): vCPUs and their maximum, memory and its maximum, description, the memory
 * balloon, the CPU mode and model (undeclared: libvirt's default), graphics type and listen address
 * (not the port libvirt picks), the guest agent channel, disks (path, format, bus, target, boot
 * order), NICs (network, model, MAC) and the extra devices (`spec.extraDevices`: the unmodelled
 * devices read back, each declared fragment matched by one of them whatever libvirt added, see
 * `libvirt/xml/extra-devices.ts`). A declared CPU mode or model, or a graphics type, that the
 * host's domain capabilities do not offer is a conflict in the plan (libvirt would define it and
 * refuse it only at start). A field
 * that differs from what virtform applied last is drift. Disks are matched by source path, then
 * target; NICs by MAC (declared, or the one virtform chose and recorded, or the current one), never
 * by list position. A NIC declared without a MAC keeps the MAC it got once.
 *
 * On a running VM, a change is applied live where libvirt and QEMU take it (measured under TCG:
 * plugging vCPUs up to the maximum, memory up to the maximum through the balloon, the
 * description), always also to the persistent definition; anything else takes effect at the next
 * boot: the record keeps a restart-required mark until the domain has been restarted (its libvirt
 * domain id changes at every start), or virtform restarts it (`restartPolicy: OnChange`). state
 * (running/stopped) and autostart are reconciled live. A running VM whose volume or network is
 * replaced is stopped first and started again after.
 */
import { createHash, randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { buildNoCloudSeed, type Seed } from '../../cloudinit/index.js';
import { parseResourceKey, resourceKey } from '../../model/kinds.js';
import type { CpuMode, DomainBoot, DomainCapabilities, DomainDef, DomainDetail, GraphicsType, VolumeFormat } from '../../model/definitions.js';
import type { VirtualMachineSpec } from '../../manifest/types.generated.js';
import { canonicalFragment, extraDevicesMatch, fragOf } from '../../libvirt/xml/extra-devices.js';
import { parseSize } from '../../manifest/index.js';
import { canonicalJson, desiredBase, type DesiredBase } from '../core/resource.js';
import {
  change, conflictOrAdopt, createReason, exactDrift, fieldChanges, interruptedOr, isMissingDrift, liveOnlyDevices, recordedConfig,
  type FieldChange, type ResourceChange,
} from '../core/change.js';
import { HostError, type HostPort } from '../ports.js';
import { definitionOf, runningDiskHolders, type Observed } from '../core/observed.js';
import { ownershipById, type Ownership } from '../core/ownership.js';
import { listedState, readListed, uuidToDefine } from './common.js';
import type { BuildContext, ChangeEffect, ExactSpec, KindHandler } from '../core/kind.js';

export type DiskBus = 'virtio' | 'sata' | 'scsi' | 'ide';

export interface VmConfig {
  vcpus: number;
  /** Only when declared (the effective maximum is then `vcpus`), so older spec hashes stay valid. */
  maxVcpus?: number;
  memoryKiB: number;
  /** Only when declared (default `memoryKiB`). */
  maxMemoryKiB?: number;
  description?: string;
  /** Only when something is declared beyond the defaults (BIOS, no kernel), so older spec hashes stay valid. */
  boot?: VmBoot;
  /** Only when declared: undeclared is libvirt's default (no `<cpu>`; it writes `custom` qemu64). */
  cpu?: { mode: CpuMode; model?: string };
  /** Only when declared with a type other than none. */
  graphics?: { type: GraphicsType; listen: string };
  /** Only when false (the default is true: the channel is there), so older spec hashes stay valid. */
  guestAgent?: false;
  /**
   * `<domain type>`, only when declared (older spec hashes stay valid). Undeclared: an existing
   * domain keeps the type it has; a new one gets the host's choice (`--domain-type`, default auto).
   */
  domainType?: 'kvm' | 'qemu';
  /** Only when declared. Digests only: the seed's text (user-data can hold secrets) never enters a config. */
  cloudInit?: VmCloudInit;
  disks: { volume: string; path: string; format: VolumeFormat; bus: DiskBus; target: string; bootOrder?: number }[];
  nics: { network: string; mac?: string; model: string }[];
  /** spec.extraDevices, canonical (one line each); only when declared and not empty, so older spec hashes stay valid. */
  extraDevices?: string[];
}
/** spec.boot normalized: kernel/initrd are host paths (a volume's file path when given as a volume). */
export interface VmBoot {
  firmware?: 'uefi';
  kernel?: string;
  kernelVolume?: string;
  initrd?: string;
  initrdVolume?: string;
  cmdline?: string;
}
/**
 * spec.cloudInit normalized: where the seed volume is, the CD-ROM it is attached as, and sha256
 * digests (`sha256:<hex>`) of the ISO and of each file in it.
 */
export interface VmCloudInit {
  pool: string;
  /** `<vm>-cidata.iso`. */
  volume: string;
  path: string;
  /** IDE target of the CD-ROM (the first after the VM's IDE disks: hda for a VM without any). */
  target: string;
  seed: string;
  userData: string;
  metaData: string;
  networkConfig?: string;
  instanceId: string;
}

/** Where a seed volume is and what was uploaded into it (VM facts). */
export interface SeedFact {
  pool: string;
  volume: string;
  sha256: string;
}

/** The seed images of desired VMs, beside (not in) the desired resource: plan JSON, journal and DB never see them. */
const SEEDS = new WeakMap<object, Seed>();
export function seedImage(r: DesiredVm): Seed | undefined {
  return SEEDS.get(r);
}

const digest = (data: Uint8Array | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
/** `sha256:0123456789ab…`: what plans and notes show of a seed digest. */
export const shortDigest = (d: unknown): unknown => (typeof d === 'string' && /^sha256:[0-9a-f]{64}$/.test(d) ? `${d.slice(0, 19)}…` : d);

export type RestartPolicy = 'Never' | 'OnChange';
export type DesiredVm = DesiredBase<'VirtualMachine', VmConfig> & {
  autostart: boolean; state: 'running' | 'stopped'; restartPolicy: RestartPolicy;
};

/** A NIC as virtform last defined it: the MAC it resolved (declared or chosen once). */
export interface ResolvedNic {
  network: string;
  model: string;
  mac: string;
  declared: boolean;
}

/** A running domain whose persistent definition has changes it only takes at the next boot. */
export interface RestartRequired {
  /** Plan field names (`spec.vcpus`, `spec.disks[1].bus`, …). */
  fields: string[];
  /** What the running domain has, per field (as first seen). */
  running: Record<string, unknown>;
  /** What the persistent definition has now, per field. */
  defined: Record<string, unknown>;
  /** ISO time the first of these changes was applied. */
  since?: string;
  /** libvirt's id of the running domain then; a restart gives it another one. */
  domainId?: number;
  /** Why, beyond the values (a live change the guest did not take). */
  notes?: string[];
}

/** What a VM's record keeps in `details.facts` (read on every run through the state index). */
export interface VmFacts {
  nics?: ResolvedNic[];
  /** The memory balloon virtio virtform defined the domain with (absent: defined by an older virtform, `none`). */
  balloon?: string;
  /** Whether virtform defined the domain with the guest agent channel (absent: by a virtform from before the channel, without it). */
  guestAgent?: boolean;
  restartRequired?: RestartRequired;
  /** The seed volume and the digest virtform uploaded into it last. */
  seed?: SeedFact;
  /** When virtform last started the domain (ms since the epoch) and the libvirt id it got. */
  startedAt?: { atMs: number; domainId: number };
  /** What the last live change could verify in the guest (`memory verified`, `vCPUs not verified (…)`). */
  liveCheck?: string[];
  /** The seed digest the running domain (libvirt domain id) was started with. */
  seedBooted?: { sha256?: string; domainId: number };
}

export type VmOp =
  | { op: 'vm.define'; define: boolean; autostart?: boolean }
  | { op: 'vm.live'; vcpus?: number; memoryKiB?: number; description?: string | null }
  | { op: 'vm.seed'; pool: string; volume: string; sha256: string }
  | { op: 'vm.unseed'; pool: string; volume: string }
  | { op: 'vm.start' }
  | { op: 'vm.stop'; graceful: boolean; restart?: boolean }
  /** `graceful`: a running domain is shut down (ACPI, up to --shutdown-timeout) before it is forced off. */
  | { op: 'vm.delete'; graceful?: boolean; seed?: { pool: string; volume: string } };

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

/** The domain definition of a desired VM; `macs[i]` is the MAC of `nics[i]` (declared or resolved). */
export function domainDef(r: DesiredVm, type: 'kvm' | 'qemu', uuid?: string, macs: (string | undefined)[] = []): DomainDef {
  const c = r.config;
  return {
    name: r.name,
    uuid,
    type,
    vcpus: c.vcpus,
    maxVcpus: c.maxVcpus ?? c.vcpus,
    memoryKiB: c.memoryKiB,
    maxMemoryKiB: c.maxMemoryKiB ?? c.memoryKiB,
    description: c.description,
    ...(c.boot ? { boot: domainBoot(c.boot) } : {}),
    ...(c.cpu ? { cpu: { ...c.cpu } } : {}),
    ...(c.graphics ? { graphics: { ...c.graphics } } : {}),
    guestAgent: c.guestAgent ?? true,
    disks: c.disks.map((d) => ({ path: d.path, format: d.format, bus: d.bus, target: d.target, bootOrder: d.bootOrder })),
    ...(c.cloudInit ? { cdroms: [{ path: c.cloudInit.path, bus: 'ide' as const, target: c.cloudInit.target }] } : {}),
    nics: c.nics.map((n, i) => ({ network: n.network, mac: n.mac ?? macs[i], model: n.model })),
    ...(c.extraDevices ? { extraDevices: [...c.extraDevices] } : {}),
    marker: { kind: r.kind, name: r.name, specHash: r.specHash },
  };
}

function domainBoot(b: VmBoot): DomainBoot {
  return {
    ...(b.firmware === 'uefi' ? { firmware: 'efi' as const } : {}),
    ...(b.kernel !== undefined ? { kernel: b.kernel } : {}),
    ...(b.initrd !== undefined ? { initrd: b.initrd } : {}),
    ...(b.cmdline !== undefined ? { cmdline: b.cmdline } : {}),
  };
}

function usedKeys(c: Pick<VmConfig, 'disks' | 'nics' | 'boot' | 'cloudInit'>, host?: string): string[] {
  return [
    ...(c.cloudInit ? [resourceKey('StoragePool', c.cloudInit.pool, host)] : []),
    ...(c.disks ?? []).map((d) => resourceKey('Volume', d.volume, host)),
    ...[c.boot?.kernelVolume, c.boot?.initrdVolume].filter((v): v is string => !!v).map((v) => resourceKey('Volume', v, host)),
    ...(c.nics ?? []).map((n) => resourceKey('Network', n.network, host)),
  ];
}

// ---------------------------------------------------------------------------------------------
// Matching the desired disks and NICs with the ones in the definition
// ---------------------------------------------------------------------------------------------

const lower = (m: string | undefined): string | undefined => (m ? m.toLowerCase() : undefined);

export interface NicMatch {
  /** Desired NIC index → index of the NIC in the current definition that it is. */
  pairs: Map<number, number>;
  /** MAC of each desired NIC: declared, else recorded (chosen once), else the matched NIC's; undefined: a new NIC. */
  macs: (string | undefined)[];
}

/**
 * Which current NIC each desired NIC is, by MAC, never by position: a declared MAC matches that
 * MAC; a NIC without one takes the MAC virtform recorded for it (recorded NICs matched on network
 * and model, then network, in order), else matches the current NIC on the same network and model,
 * then the same network, in definition order.
 */
export function matchNics(
  want: readonly { network: string; model: string; mac?: string }[],
  current: readonly { network: string; model: string; mac: string }[],
  recorded: readonly ResolvedNic[] = [],
): NicMatch {
  const used = new Set<number>();
  const pairs = new Map<number, number>();
  const declared = new Set(want.map((n) => lower(n.mac)).filter((m): m is string => !!m));
  const claim = (i: number, pick: (c: { network: string; model: string; mac: string }) => boolean): void => {
    const j = current.findIndex((c, k) => !used.has(k) && pick(c));
    if (j >= 0) {
      used.add(j);
      pairs.set(i, j);
    }
  };
  want.forEach((n, i) => {
    if (n.mac) claim(i, (c) => lower(c.mac) === lower(n.mac));
  });
  const rec = recorded.filter((x) => !x.declared && !declared.has(x.mac.toLowerCase()));
  const recUsed = new Set<number>();
  const recMac: (string | undefined)[] = want.map(() => undefined);
  for (const strict of [true, false]) {
    want.forEach((n, i) => {
      if (n.mac || recMac[i]) return;
      const k = rec.findIndex((x, k2) => !recUsed.has(k2) && x.network === n.network && (!strict || x.model === n.model));
      if (k >= 0) {
        recUsed.add(k);
        recMac[i] = rec[k]!.mac.toLowerCase();
      }
    });
  }
  want.forEach((n, i) => {
    if (!n.mac && recMac[i]) claim(i, (c) => lower(c.mac) === recMac[i]);
  });
  for (const strict of [true, false]) {
    want.forEach((n, i) => {
      if (n.mac || pairs.has(i)) return;
      claim(i, (c) => !declared.has(c.mac.toLowerCase()) && c.network === n.network && (!strict || c.model === n.model));
    });
  }
  const macs = want.map((n, i) => lower(n.mac) ?? recMac[i] ?? (pairs.has(i) ? lower(current[pairs.get(i)!]!.mac) : undefined));
  return { pairs, macs };
}

/** Which current disk each desired disk is: the one with its source path, else the one on its target. */
function matchDisks(want: VmConfig['disks'], current: DomainDetail['disks']): Map<number, number> {
  const used = new Set<number>();
  const pairs = new Map<number, number>();
  for (const same of [(a: VmConfig['disks'][number], b: DomainDetail['disks'][number]) => a.path === b.path,
    (a: VmConfig['disks'][number], b: DomainDetail['disks'][number]) => a.target === b.target]) {
    want.forEach((d, i) => {
      if (pairs.has(i)) return;
      const j = current.findIndex((c, k) => !used.has(k) && same(d, c));
      if (j >= 0) {
        used.add(j);
        pairs.set(i, j);
      }
    });
  }
  return pairs;
}

/** A MAC virtform chooses for a new NIC (libvirt's and QEMU's 52:54:00 prefix), unused in the domain. */
export function freshMac(taken: Set<string>): string {
  for (;;) {
    const mac = `52:54:00:${[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
    if (!taken.has(mac)) return mac;
  }
}

// ---------------------------------------------------------------------------------------------
// Comparing a desired config with the definition
// ---------------------------------------------------------------------------------------------

/** Field name of a plan line → the VmConfig field of the `fields` spec. */
function configField(field: string): keyof VmConfig | 'balloon' {
  const m = /^spec\.(\w+)/.exec(field);
  if (field === 'domain.memballoon') return 'balloon';
  return (m?.[1] ?? field) as keyof VmConfig;
}

/** Differences between the definition and a config, as plan lines (`before` = the definition's). */
export function compareVm(cur: DomainDetail, want: VmConfig, nics: NicMatch): FieldChange[] {
  const out: FieldChange[] = [];
  const put = (field: string, before: unknown, after: unknown): void => {
    if (canonicalJson(before) !== canonicalJson(after)) out.push({ field, before, after });
  };
  put('spec.vcpus', cur.vcpus, want.vcpus);
  put('spec.maxVcpus', cur.maxVcpus, want.maxVcpus ?? want.vcpus);
  put('spec.memoryKiB', cur.memoryKiB, want.memoryKiB);
  put('spec.maxMemoryKiB', cur.maxMemoryKiB, want.maxMemoryKiB ?? want.memoryKiB);
  put('spec.description', cur.description || undefined, want.description || undefined);
  put('domain.memballoon', cur.balloon, 'virtio');
  put('spec.boot.firmware', cur.boot?.firmware === 'efi' ? 'uefi' : 'bios', want.boot?.firmware ?? 'bios');
  put('spec.boot.kernel', cur.boot?.kernel, want.boot?.kernel);
  put('spec.boot.initrd', cur.boot?.initrd, want.boot?.initrd);
  put('spec.boot.cmdline', cur.boot?.cmdline, want.boot?.cmdline);
  // Undeclared: libvirt's default, which it writes into the definition as `custom` qemu64.
  const curCpu = cur.cpu && !(want.cpu === undefined && isDefaultCpu(cur.cpu)) ? cur.cpu : undefined;
  put('spec.cpu', curCpu, want.cpu);
  // Type and listen address only: libvirt fills in the port of a running domain (autoport).
  put('spec.graphics', graphicsOf(cur), want.graphics);
  put('spec.guestAgent', cur.guestAgent, want.guestAgent ?? true);
  // Only when declared: an undeclared type is whatever the domain has (never flipped by a run's --domain-type).
  if (want.domainType !== undefined) put('spec.domainType', cur.type, want.domainType);
  const cdroms = (cur.cdroms ?? []).map((x) => `${x.target}=${x.path} (${x.bus})`).sort().join(', ') || undefined;
  put('spec.cloudInit.cdrom', cdroms, want.cloudInit ? `${want.cloudInit.target}=${want.cloudInit.path} (ide)` : undefined);

  const disks = matchDisks(want.disks, cur.disks);
  const paired = new Set(disks.values());
  want.disks.forEach((d, i) => {
    const j = disks.get(i);
    const c = j === undefined ? undefined : cur.disks[j]!;
    const at = `spec.disks[${i}]`;
    if (!c || c.path === d.path) put(`${at}.volume`, c ? d.volume : undefined, d.volume);
    put(`${at}.path`, c?.path, d.path);
    put(`${at}.format`, c ? c.format ?? d.format : undefined, d.format);
    put(`${at}.bus`, c?.bus, d.bus);
    put(`${at}.target`, c?.target, d.target);
    put(`${at}.bootOrder`, c?.bootOrder, d.bootOrder);
  });
  cur.disks.forEach((c, j) => {
    if (!paired.has(j)) out.push({ field: `spec.disks[${c.target}]`, before: { path: c.path, bus: c.bus, bootOrder: c.bootOrder }, after: undefined });
  });

  const pairedNics = new Set(nics.pairs.values());
  want.nics.forEach((n, i) => {
    const j = nics.pairs.get(i);
    const c = j === undefined ? undefined : cur.nics[j]!;
    const at = `spec.nics[${i}]`;
    put(`${at}.network`, c?.network, n.network);
    put(`${at}.model`, c?.model, n.model);
    if (nics.macs[i] !== undefined) put(`${at}.mac`, lower(c?.mac), nics.macs[i]);
  });
  cur.nics.forEach((c, j) => {
    if (!pairedNics.has(j)) out.push({ field: `spec.nics[${c.mac}]`, before: { network: c.network, model: c.model, mac: c.mac }, after: undefined });
  });
  // Matched, not compared as text: libvirt adds to what it stores (a PCI address, a serial's target type).
  const haveExtra = cur.extraDevices ?? [];
  const wantExtra = want.extraDevices ?? [];
  if (!extraDevicesMatch(wantExtra, haveExtra)) {
    out.push({ field: 'spec.extraDevices', before: haveExtra.length ? haveExtra : undefined, after: wantExtra.length ? wantExtra : undefined });
  }
  return out;
}

/** What libvirt writes into an x86 definition that has no `<cpu>`. */
export function isDefaultCpu(cpu: { mode: string; model?: string }): boolean {
  return cpu.mode === 'custom' && cpu.model === 'qemu64';
}

/** The declared part of a definition's graphics: undefined (none), one `{type, listen}`, or the list when there are several. */
function graphicsOf(d: Pick<DomainDetail, 'graphics'>): unknown {
  const g = (d.graphics ?? []).map((x) => ({ type: x.type, listen: x.listen }));
  return g.length === 0 ? undefined : g.length === 1 ? g[0] : g;
}

/**
 * Why the host cannot run what a VM declares (its domain capabilities for the domain type in use),
 * else undefined; `notes` gets what it can run with a caveat.
 */
export function capabilityProblem(r: DesiredVm, caps: DomainCapabilities, notes: string[]): string | undefined {
  const c = r.config;
  const problems: string[] = [];
  const type = caps.domainType || 'this';
  if (c.cpu && !caps.cpuModes.includes(c.cpu.mode)) {
    problems.push(`spec.cpu.mode ${c.cpu.mode} is not offered by the host for ${type} domains` +
      `${caps.domainType === 'qemu' && c.cpu.mode === 'host-passthrough' ? ' (TCG emulates the CPU: there is no host CPU to pass through)' : ''}` +
      `; it offers ${caps.cpuModes.join(', ') || 'none'}`);
  } else if (c.cpu?.mode === 'custom' && c.cpu.model !== undefined) {
    const m = caps.cpuModels.find((x) => x.name === c.cpu!.model);
    if (!m) {
      const usable = caps.cpuModels.filter((x) => x.usable).map((x) => x.name);
      problems.push(`spec.cpu.model ${c.cpu.model} is not a CPU model the host knows for ${type} domains; usable models: ${usable.join(', ') || 'none'}`);
    } else if (!m.usable) {
      notes.push(`CPU model ${m.name} is listed as not usable on this host (the host CPU lacks some of its features): QEMU runs it without them`);
    }
  }
  if (c.graphics && !caps.graphicsTypes.includes(c.graphics.type)) {
    problems.push(`spec.graphics.type ${c.graphics.type} is not offered by the host's QEMU; it offers ${caps.graphicsTypes.filter((t) => t === 'vnc' || t === 'spice').join(', ') || 'no graphics'}`);
  }
  return problems.length ? `VirtualMachine ${r.name}: ${problems.join('; ')}` : undefined;
}

/** How each line takes effect on a running domain (`pending`: restart-required fields not yet taken). */
function effectOf(f: FieldChange, cur: DomainDetail, want: VmConfig, pending: Set<string>): ChangeEffect {
  const spec = vmFields.find((x) => x.field === configField(f.field));
  if (!spec) return 'restart';
  if (typeof spec.effect === 'string') return spec.effect;
  return spec.effect(f.before, f.after, { cur, want, pending });
}

/** The restart-required mark of a record, if the domain is still the one it was set on. */
export function pendingRestart(observed: Observed, key: string, name: string): RestartRequired | undefined {
  const rr = factsOf(observed, key)?.restartRequired;
  const d = observed.domains.get(name);
  return rr && d?.active && rr.domainId === d.id ? rr : undefined;
}

export function factsOf(observed: Observed, key: string): VmFacts | undefined {
  const r = observed.records.get(key);
  const f = (r && 'facts' in r ? r.facts : undefined) ?? r?.details?.facts;
  return f && typeof f === 'object' ? (f as VmFacts) : undefined;
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : v === undefined ? '(none)' : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** `restart required for spec.vcpus (running with 1, defined 2), spec.disks[1].bus (…)`. */
export function restartText(rr: RestartRequired): string {
  const parts = rr.fields.map((f) => {
    const unit = /memoryKiB$/i.test(f);
    const v = (x: unknown): string => (unit && typeof x === 'number' ? `${x / 1024}MiB` : show(x));
    const field = f.replace(/memoryKiB$/, 'memory').replace(/MemoryKiB$/, 'Memory').replace(/\.bootOrder$/, '.boot');
    return `${field} (running with ${v(rr.running[f])}, defined ${v(rr.defined[f])})`;
  });
  return `restart required for ${parts.join(', ')}${rr.notes?.length ? ` (${rr.notes.join('; ')})` : ''}`;
}

/** Merge restart-requiring lines into the mark still pending on the same running domain. */
function mergeRestart(pending: RestartRequired | undefined, lines: FieldChange[]): RestartRequired | undefined {
  const running: Record<string, unknown> = { ...(pending?.running ?? {}) };
  const defined: Record<string, unknown> = { ...(pending?.defined ?? {}) };
  for (const f of lines) {
    if (!(f.field in running)) running[f.field] = f.before;
    defined[f.field] = f.after;
  }
  const fields = Object.keys(defined).filter((k) => canonicalJson(running[k]) !== canonicalJson(defined[k]));
  if (fields.length === 0) return undefined;
  return {
    fields,
    running: Object.fromEntries(fields.map((k) => [k, running[k]])),
    defined: Object.fromEntries(fields.map((k) => [k, defined[k]])),
    ...(pending?.since ? { since: pending.since } : {}),
    ...(pending?.domainId !== undefined ? { domainId: pending.domainId } : {}),
  };
}

type EffectCtx = { cur: DomainDetail; want: VmConfig; pending: Set<string> };
const shapePending = (p: Set<string>): boolean => [...p].some((f) => /^spec\.max|^domain\./.test(f));

/** Per-field spec (what `[live]`/`[restart]` in the plan come from). Measured on QEMU 7.2 TCG, libvirt 9.0. */
const vmFields = [
  {
    // Plugging vCPUs up to the maximum works without a guest; unplugging needs the guest (QEMU refuses it under TCG).
    field: 'vcpus', manifest: 'spec.vcpus',
    effect: (b: unknown, a: unknown, w?: unknown) => {
      const { cur, want, pending } = w as EffectCtx;
      const max = want.maxVcpus ?? want.vcpus;
      return Number(a) > Number(b) && cur.maxVcpus === max && !shapePending(pending) ? 'live' : 'restart';
    },
  },
  { field: 'maxVcpus', manifest: 'spec.maxVcpus', effect: 'restart' },
  {
    // The balloon target changes live within the maximum (a guest balloon driver then gives the memory back).
    field: 'memoryKiB', manifest: 'spec.memory', unit: 'KiB',
    effect: (_b: unknown, _a: unknown, w?: unknown) => {
      const { cur, want, pending } = w as EffectCtx;
      return cur.maxMemoryKiB === (want.maxMemoryKiB ?? want.memoryKiB) && cur.balloon === 'virtio' && !shapePending(pending) ? 'live' : 'restart';
    },
  },
  { field: 'maxMemoryKiB', manifest: 'spec.maxMemory', unit: 'KiB', effect: 'restart' },
  { field: 'description', manifest: 'spec.description', effect: 'live' },
  // QEMU reads firmware, kernel, initrd and command line when it starts.
  { field: 'boot', manifest: 'spec.boot', effect: 'restart' },
  { field: 'cpu', manifest: 'spec.cpu', effect: 'restart' },
  { field: 'graphics', manifest: 'spec.graphics', effect: 'restart' },
  { field: 'guestAgent', manifest: 'spec.guestAgent', effect: 'restart' },
  // QEMU runs under KVM or TCG from its start.
  { field: 'domainType', manifest: 'spec.domainType', effect: 'restart' },
  // cloud-init reads its seed when the guest boots; a running domain keeps the seed file it opened.
  { field: 'cloudInit', manifest: 'spec.cloudInit', effect: 'restart' },
  { field: 'disks', manifest: 'spec.disks', effect: 'restart' },
  { field: 'nics', manifest: 'spec.nics', effect: 'restart' },
  // Kept simple: a changed list is defined and taken at the next boot (no live attach/detach).
  { field: 'extraDevices', manifest: 'spec.extraDevices', effect: 'restart' },
] as const satisfies readonly { field: keyof VmConfig; manifest: string; unit?: 'KiB'; effect: ChangeEffect | ((b: unknown, a: unknown, w?: unknown) => ChangeEffect) }[];

/**
 * Exact drift of domains. Nothing is ignored: measured on libvirt 9.0 / QEMU 7.2, the inactive
 * XML does not change when a domain starts or stops, its network restarts, or libvirtd restarts
 * (PCI addresses, the machine type and the default devices are written at define time).
 * What the field-level comparison explains: vCPUs, memory, description, `<os>`, `<cpu>`,
 * graphics, the balloon, the guest agent channel, and disks and NICs themselves with their
 * source, driver, target, boot order, model and MAC (not e.g. a disk's `<readonly/>` or a NIC's
 * `<link>`).
 */
export const VM_EXACT: ExactSpec = {
  object: 'domain',
  ignore: [],
  modelled: [
    /^(vcpu|vcpus|memory|currentMemory|description)$/,
    /^os(\/|$)/,
    /^cpu(\/|$)/,
    /^devices\/(graphics|memballoon)(\[|\/|$)/,
    /^devices\/channel\[target=org\.qemu\.guest_agent\.0\](\/|$)/,
    /^devices\/disk\[[^\]]*\](\/(source|driver|target|boot|address))?$/,
    /^devices\/interface\[[^\]]*\](\/(source|model|mac|address))?$/,
  ],
};

/** Field of the restart-required mark for devices a running domain has that its definition lacks. */
const LIVE_ONLY = 'devices (live only)';

export const vmKind: KindHandler<DesiredVm, VmOp> = {
  kind: 'VirtualMachine',
  exact: VM_EXACT,
  // A plan deleting every VM virtform owns (two or more) is refused by default.
  brakeOnWipe: true,
  guest: { declaredRunning: (r) => r.state === 'running', hasGraphics: (c) => !!(c as { graphics?: unknown } | undefined)?.graphics },
  ops: {
    'vm.define': { label: 'define domain', teardown: false },
    'vm.live': { label: 'change running domain', teardown: false },
    'vm.seed': { label: 'build and upload cloud-init seed', teardown: false },
    'vm.unseed': { label: 'delete cloud-init seed', teardown: false },
    'vm.start': { label: 'start domain', teardown: false },
    'vm.stop': { label: 'stop domain', teardown: true },
    'vm.delete': { label: 'delete domain', teardown: true },
  },
  fields: vmFields,

  build(state, ctx) {
    return state.vms.map((vm) => {
      const busCounters = new Map<string, number>();
      const config: VmConfig = {
        vcpus: vm.spec.vcpus,
        ...(vm.spec.maxVcpus !== undefined ? { maxVcpus: vm.spec.maxVcpus } : {}),
        memoryKiB: Math.floor(parseSize(vm.spec.memory as string | number) / 1024),
        ...(vm.spec.maxMemory !== undefined ? { maxMemoryKiB: Math.floor(parseSize(vm.spec.maxMemory as string | number) / 1024) } : {}),
        description: vm.spec.description,
        ...(vm.spec.boot ? bootConfig(vm.spec.boot, ctx) : {}),
        ...(vm.spec.cpu ? { cpu: { mode: vm.spec.cpu.mode as CpuMode, ...(vm.spec.cpu.model !== undefined ? { model: vm.spec.cpu.model } : {}) } } : {}),
        ...(vm.spec.graphics && (vm.spec.graphics.type ?? 'none') !== 'none'
          ? { graphics: { type: vm.spec.graphics.type as GraphicsType, listen: vm.spec.graphics.listen ?? '127.0.0.1' } } : {}),
        ...(vm.spec.guestAgent === false ? { guestAgent: false as const } : {}),
        ...(vm.spec.domainType !== undefined ? { domainType: vm.spec.domainType as 'kvm' | 'qemu' } : {}),
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
        ...(vm.spec.extraDevices?.length ? { extraDevices: vm.spec.extraDevices.map((x) => canonicalFragment(fragOf(x))) } : {}),
      };
      const seed = vm.spec.cloudInit ? cloudInitConfig(vm.metadata.name, vm.spec.cloudInit, config.disks, ctx) : undefined;
      if (seed) config.cloudInit = seed.config;
      const r: DesiredVm = {
        ...desiredBase('VirtualMachine', vm, ctx.host, config),
        autostart: vm.spec.autostart ?? false, state: (vm.spec.state ?? 'running') as 'running' | 'stopped',
        restartPolicy: (vm.spec.restartPolicy ?? 'Never') as RestartPolicy,
      };
      if (seed) SEEDS.set(r, seed.image);
      return r;
    });
  },
  dependencies: (r) => usedKeys(r.config, r.host),
  recordedDependencies: (previous) => (previous ? usedKeys(previous as VmConfig) : []),
  poolsToList: ({ desired, journal }) => [
    ...(desired?.config.cloudInit ? [desired.config.cloudInit.pool] : []),
    ...(journal && typeof journal.intent.pool === 'string' ? [journal.intent.pool] : []),
  ],

  identity: (observed, name) => observed.domains.get(name)?.uuid,

  async readDefinitions(host, observed, wanted) {
    const [defs] = await Promise.all([
      readListed(observed.domains, wanted, (l, u) => host.definitions.domains(l, u), (observed.unreadable ??= new Map())),
      readLiveDisks(host, observed, wanted),
    ]);
    return defs;
  },

  needsDomainCapabilities: (r) => r.config.cpu !== undefined || r.config.graphics !== undefined,

  diff(r, { observed, opts }) {
    const key = r.key;
    const own = ownershipById(observed, r.kind, r.name, observed.domains.get(r.name)?.uuid, key);
    const obs = observed.domains.get(r.name);
    const record = observed.records.get(key);
    const cur = definitionOf(observed, 'VirtualMachine', key);
    const wantRunning = r.state === 'running';
    const graceful = opts.gracefulStop ?? true;
    const conflict = conflictOrAdopt(r, own) ?? seedNameTaken(r, observed, own);
    if (conflict) return conflict;
    // What the definition asks of the hypervisor, checked before it is defined (libvirt would
    // define it and refuse it only at start).
    const capsNotes: string[] = [];
    const unmet = observed.domainCapabilities ? capabilityProblem(r, observed.domainCapabilities, capsNotes) : undefined;
    if (own.state === 'absent' || !obs) {
      if (unmet) return change(r, 'conflict', unmet, own);
      return change(r, 'create', createReason(record), own, {
        notes: capsNotes,
        drift: isMissingDrift(record),
        fields: fieldChanges(undefined, { ...r.config, state: r.state, autostart: r.autostart }).map(shortLine),
        steps: [
          { op: 'vm.define', define: true, autostart: r.autostart },
          ...(r.config.cloudInit ? [seedOp(r.config.cloudInit)] : []),
          ...(r.state === 'running' ? [{ op: 'vm.start' as const }] : []),
        ],
      });
    }
    const adopting = own.state === 'foreign';
    const facts = adopting ? undefined : factsOf(observed, key);
    const running = obs.active;
    const pending = adopting ? undefined : pendingRestart(observed, key, r.name);
    const pendingFields = new Set(pending?.fields ?? []);

    // The real definition against the manifest; against what virtform applied last for drift.
    const fields: FieldChange[] = [];
    let drift = false;
    if (cur) {
      const match = matchNics(r.config.nics, cur.nics, facts?.nics);
      fields.push(...compareVm(cur, r.config, match));
      const prev = adopting ? undefined : recordedConfig<VmConfig>(observed, key) ?? (record?.specHash === r.specHash ? r.config : undefined);
      const sinceApplied = new Set<string>();
      if (prev && fields.length > 0) {
        const applied = prev === r.config ? fields : compareVm(cur, prev, matchNics(prev.nics, cur.nics, facts?.nics));
        for (const f of applied) {
          // An older virtform defined domains without a balloon: not drift.
          if (f.field === 'domain.memballoon' && facts?.balloon !== 'virtio') continue;
          // Nor without the guest agent channel: adding it is a change of this version, not drift.
          if (f.field === 'spec.guestAgent' && facts?.guestAgent === undefined) continue;
          sinceApplied.add(f.field);
        }
      }
      for (const f of fields) {
        f.effect = effectOf(f, cur, r.config, pendingFields);
        if (sinceApplied.has(f.field)) f.drift = drift = true;
      }
    }
    // Exact drift: the whole definition against its baseline (a definition made transient has none to compare).
    const transient = obs.persistent === false;
    const exact = cur && !adopting && !transient ? exactDrift(observed, key, VM_EXACT, fields.length > 0) : [];
    for (const f of exact) f.effect = 'restart';
    fields.push(...exact);
    drift ||= exact.length > 0 || (transient && !adopting);
    // Devices of the running domain its definition lacks (attached live only): a restart drops
    // them; until then the restart-required mark names them (a detach could need the guest).
    const liveOnly = running && !adopting && !transient ? liveOnlyDevices(cur?.liveXml, cur?.xml) : [];
    const liveOnlyKnown = canonicalJson(pending?.running[LIVE_ONLY]) === canonicalJson(liveOnly.map((f) => f.field).join(', '));
    const liveOnlyNew = liveOnly.length > 0 && !liveOnlyKnown ? liveOnly : [];
    for (const f of liveOnlyNew) f.effect = 'restart';
    fields.push(...liveOnlyNew);
    drift ||= liveOnlyNew.length > 0;
    const seed = planSeed(r, observed, facts, adopting ? undefined : recordedConfig<VmConfig>(observed, key));
    drift ||= seed.drift;
    const specChanged = !adopting && record?.specHash !== r.specHash;
    const redefine = fields.length > 0 || adopting || specChanged || !cur || transient;
    if (redefine && unmet) return change(r, 'conflict', unmet, own);

    // Converged: definition, state and autostart match (a pending restart is a notice, not a change).
    const restartNow = r.restartPolicy === 'OnChange' && running && wantRunning;
    if (!redefine && obs.autostart === r.autostart && running === wantRunning && !(restartNow && pending) && !seed.op) return undefined;

    const reasons: string[] = [];
    const notes: string[] = redefine ? [...capsNotes] : [];
    const steps: VmOp[] = [];
    const lines: FieldChange[] = [];
    if (running && !wantRunning) {
      steps.push({ op: 'vm.stop', graceful });
      lines.push({ field: 'spec.state', before: 'running', after: 'stopped' });
      reasons.push('desired stopped');
    }
    const live = running && wantRunning ? fields.filter((f) => f.effect === 'live') : [];
    const restart = running && wantRunning ? [...fields, ...seed.lines].filter((f) => f.effect !== 'live') : [];
    let restartRequired: RestartRequired | undefined;
    if (redefine || obs.autostart !== r.autostart) {
      lines.push(...fields);
      if (redefine) {
        const why = adopting ? 'adopting existing domain (metadata.adopt)'
          : transient ? 'definition removed outside virtform (drift): the running domain is defined again'
          : liveOnlyNew.length > 0 && fields.length === liveOnlyNew.length ? 'devices attached to the running domain outside virtform (drift): dropped at its next boot'
          : drift ? 'definition changed outside virtform (drift)'
          : fields.length > 0 ? interruptedOr(own, 'definition changed')
          : !cur ? interruptedOr(own, 'definition unreadable') : 'recording the declared config';
        reasons.push(why);
        // What the plan expects to be left for the next boot. A line that is drift was most likely
        // changed in the persistent definition only (`virsh … --config`): the running domain still
        // has the value asked for. apply records the real difference, running against defined.
        // The seed's lines are one entry, spec.cloudInit (booted against uploaded seed), added below.
        const forBoot = restart.filter((f) => !f.drift && !f.field.startsWith('spec.cloudInit.'));
        if (running && wantRunning && forBoot.length > 0) restartRequired = mergeRestart(pending, forBoot);
      }
      steps.push({
        op: 'vm.define', define: redefine,
        autostart: obs.autostart !== r.autostart || redefine ? r.autostart : undefined,
      });
      if (obs.autostart !== r.autostart) {
        // Flipped on the host while the manifest stayed as applied: drift.
        const flipped = !adopting && !!record && record.specHash === r.specHash && !transient;
        lines.push({ field: 'spec.autostart', before: obs.autostart, after: r.autostart, ...(flipped ? { drift: true } : {}) });
        if (flipped) {
          drift = true;
          if (!redefine) reasons.push('autostart changed outside virtform (drift)');
        }
      }
    }
    if (seed.op) {
      // After the definition (a running domain keeps the seed file it opened), before a (re)start.
      steps.push(seed.op);
      lines.push(...seed.lines.map(shortLine));
      notes.push(...seed.notes);
      if (seed.reason) reasons.push(seed.reason);
      const booted = bootedSeed(facts, obs.id);
      if (running && wantRunning && booted !== r.config.cloudInit?.seed) {
        restartRequired = mergeRestart(restartRequired ?? pending, [{ field: 'spec.cloudInit', before: shortDigest(booted), after: shortDigest(r.config.cloudInit?.seed) }]);
      }
    }
    if (live.length > 0) {
      const op: Extract<VmOp, { op: 'vm.live' }> = { op: 'vm.live' };
      for (const f of live) {
        if (f.field === 'spec.vcpus') op.vcpus = r.config.vcpus;
        if (f.field === 'spec.memoryKiB') op.memoryKiB = r.config.memoryKiB;
        if (f.field === 'spec.description') op.description = r.config.description || null;
      }
      steps.push(op);
    }
    const mark = running && wantRunning ? restartRequired ?? pending : undefined;
    if (restartNow && restart.length > 0 && !mark) {
      steps.push({ op: 'vm.stop', graceful: true, restart: true }, { op: 'vm.start' });
      reasons.push('restart required (restartPolicy: OnChange)');
    } else if (mark && restartNow) {
      steps.push({ op: 'vm.stop', graceful: true, restart: true }, { op: 'vm.start' });
      reasons.push('restart required (restartPolicy: OnChange)');
      notes.push(`restarts the VM to apply: ${restartText(mark).replace(/^restart required for /, '')}`);
    } else if (mark) {
      notes.push(`${restartText(mark)}; takes effect on next boot (restartPolicy: Never)`);
    }
    if (!running && wantRunning) {
      steps.push({ op: 'vm.start' });
      lines.push({ field: 'spec.state', before: 'stopped', after: 'running' });
      reasons.push(record?.desiredState === 'running' ? 'domain is stopped (drift)' : 'desired running');
      drift ||= record?.desiredState === 'running';
    }
    if (liveOnlyNew.length > 0 && !steps.some((s) => s.op === 'vm.stop')) {
      notes.push(`${liveOnlyNew.map((f) => f.field).join(', ')}: attached to the running domain only; dropped at its next boot (restartPolicy: Never)`);
    }
    const stop = steps.find((s): s is Extract<VmOp, { op: 'vm.stop' }> => s.op === 'vm.stop');
    if (stop) notes.push(stopNote(stop.graceful));
    if (steps.length === 0) return undefined;
    return change(r, 'update', reasons.join('; ') || 'autostart differs', own, { fields: lines, notes, steps, adopt: adopting, drift });
  },

  /**
   * Cross-VM adjustments: a running VM whose volume or network is replaced or restarted is
   * restarted too; a disk changes hands only after the VM holding it has stopped.
   */
  afterDiff(vms, observed, changes, opts) {
    restartDisrupted(vms, observed, changes, opts);
    orderDiskHandover(vms, observed, changes);
    for (const r of vms) {
      const c = changes.find((x) => x.key === r.key);
      if (c) c.notes.push(...deletedDiskNotes(observed, r));
    }
  },

  /** A restart-required mark still pending on the running domain, when nothing else changes. */
  notices(r, { observed }) {
    const rr = pendingRestart(observed, r.key, r.name);
    const waits = HANDOVER_WAITS.get(observed)?.get(r.name);
    return [
      ...(rr ? [`${r.key}: ${restartText(rr)}${waits ? `; ${waits}` : ''}`] : []),
      ...deletedDiskNotes(observed, r).map((n) => `${r.key}: ${n}`),
    ];
  },
  deleteSteps: (_name, where, opts) => {
    const ci = (where.config as Partial<VmConfig> | undefined)?.cloudInit;
    const fromJournal = where.intents?.find((i) => typeof i.pool === 'string' && typeof i.volume === 'string');
    const seed = ci ? { pool: ci.pool, volume: ci.volume } : fromJournal ? { pool: String(fromJournal.pool), volume: String(fromJournal.volume) } : undefined;
    return [{ op: 'vm.delete', graceful: opts?.gracefulStop ?? true, ...(seed ? { seed } : {}) }];
  },
  deleteNotes: (name, observed, opts) => (observed.domains.get(name)?.active ? [stopNote(opts?.gracefulStop ?? true)] : []),

  /** A seed step names its volume, so that a run after an interruption can find (and delete) it. */
  intent: (op) => (op.op === 'vm.seed' || op.op === 'vm.unseed' ? { pool: op.pool, volume: op.volume } : op.op === 'vm.delete' && op.seed ? { ...op.seed } : {}),
  async execute(op, ctx): Promise<void> {
    const { host, step } = ctx;
    const observedDomain = ctx.observed.domains.get(step.name);
    const facts = (ctx.replacing ? undefined : factsOf(ctx.observed, step.key)) ?? {};
    switch (op.op) {
      case 'vm.define': {
        const d = ctx.desired!;
        if (!op.define) {
          if (op.autostart !== undefined) await host.setDomainAutostart(d.name, op.autostart);
          ctx.boundary();
          await ctx.record({ uuid: observedDomain?.uuid ?? null, observedStatus: observedDomain?.active ? 'running' : 'stopped', desiredState: d.state });
          return;
        }
        // The definition a redefinition starts from (its MACs are kept): the one observed, or on a
        // retry the current one (the failed attempt may have defined it already).
        const current = ctx.attempt === 1 ? definitionOf(ctx.observed, 'VirtualMachine', step.key) : (await host.getDomain(d.name)) ?? undefined;
        let uuid = await uuidToDefine(ctx, observedDomain?.uuid, async () => current ?? null);
        const { macs } = matchNics(d.config.nics, current?.nics ?? [], facts.nics);
        const taken = new Set([...macs, ...(current?.nics ?? []).map((n) => n.mac.toLowerCase())].filter((m): m is string => !!m));
        const resolved = macs.map((m) => {
          if (m) return m;
          const fresh = freshMac(taken);
          taken.add(fresh);
          return fresh;
        });
        uuid = (await host.defineDomain(domainDef(d, await domainTypeFor(host, d, current, !!observedDomain), uuid, resolved))).uuid;
        if (op.autostart !== undefined) await host.setDomainAutostart(d.name, op.autostart);
        ctx.boundary();
        const next: VmFacts = {
          balloon: 'virtio',
          guestAgent: d.config.guestAgent ?? true,
          nics: d.config.nics.map((n, i) => ({ network: n.network, model: n.model, mac: resolved[i]!, declared: !!n.mac })),
        };
        await ctx.record({
          uuid: uuid ?? null, observedStatus: observedDomain?.active ? 'running' : 'stopped',
          desiredState: d.state, config: true,
          facts: { ...next, restartRequired: observedDomain?.active ? await restartState(host, d.name, facts.restartRequired, { facts, current: facts.seed?.sha256 }) : null },
        });
        return;
      }
      case 'vm.live': {
        const balloonBefore = op.memoryKiB !== undefined ? await host.domainBalloonKiB(step.name) : null;
        if (op.vcpus !== undefined) await host.setDomainVcpus(step.name, op.vcpus);
        if (op.memoryKiB !== undefined) await host.setDomainMemory(step.name, op.memoryKiB);
        if (op.description !== undefined) await host.setDomainDescription(step.name, op.description ?? undefined);
        ctx.boundary();
        // Read back what the guest did with it: the balloon's actual size, the vCPUs its agent sees online.
        const unapplied = await liveReadBack(host, step.name, op, balloonBefore);
        const rr = await restartState(host, step.name, facts.restartRequired, { facts, current: facts.seed?.sha256 });
        await ctx.record({ observedStatus: 'running', desiredState: ctx.desired!.state, facts: { restartRequired: withUnapplied(rr, unapplied, facts.restartRequired), liveCheck: unapplied.check } });
        return;
      }
      case 'vm.seed': {
        const d = ctx.desired!;
        const image = seedImage(d);
        if (!image || `sha256:${image.sha256}` !== op.sha256) throw new Error(`internal error: no seed image ${op.sha256} for ${step.key}`);
        // A new file every time (never written in place): a running domain keeps reading the seed it
        // opened at its start, a half-written seed is never what a booting guest finds. An existing
        // file of that name is deleted only when it is virtform's (recorded, named by an interrupted
        // step, or made by this run): one that appeared since the plan was made is not overwritten.
        const made = seedsMade(ctx.observed);
        const at = `${op.pool}/${op.volume}`;
        if (await host.getVolume(op.pool, op.volume)) {
          if (!d.adopt && !made.has(at) && !seedIsOurs(ctx.observed, step.key, op.pool, op.volume)) {
            throw new HostError('already-exists', `a volume ${op.volume} that virtform did not create exists in pool ${op.pool}: the cloud-init seed is not written over it`);
          }
          await host.deleteVolume(op.pool, op.volume);
        }
        made.add(at);
        await host.createVolume({ pool: op.pool, name: op.volume, capacityBytes: image.iso.length, format: 'raw', mode: 0o600 });
        await host.uploadVolume(op.pool, op.volume, once(image.iso), { sparse: false });
        const old = facts.seed;
        if (old && (old.pool !== op.pool || old.volume !== op.volume)) await host.deleteVolume(old.pool, old.volume);
        const live = await host.getRunningDomain(step.name);
        const seedFacts = { seed: { pool: op.pool, volume: op.volume, sha256: op.sha256 } satisfies SeedFact };
        const rr = live ? await restartState(host, step.name, facts.restartRequired, { facts, current: op.sha256 }) : null;
        ctx.boundary();
        await ctx.record({
          observedStatus: live ? 'running' : 'stopped', desiredState: d.state,
          facts: {
            ...seedFacts,
            // What the running domain booted with stays known once the volume holds another seed.
            seedBooted: live ? { sha256: bootedSeed(facts, live.id), domainId: live.id } : null,
            restartRequired: rr,
          },
        });
        return;
      }
      case 'vm.unseed': {
        await host.deleteVolume(op.pool, op.volume);
        const live = await host.getRunningDomain(step.name);
        const rr = live ? await restartState(host, step.name, facts.restartRequired, { facts, current: undefined }) : null;
        ctx.boundary();
        await ctx.record({
          observedStatus: live ? 'running' : 'stopped', desiredState: ctx.desired!.state,
          facts: { seed: null, seedBooted: live ? { sha256: bootedSeed(facts, live.id), domainId: live.id } : null, restartRequired: rr },
        });
        return;
      }
      case 'vm.start': {
        const atMs = Date.now();
        await host.startDomain(step.name);
        const ci = ctx.desired!.config.cloudInit;
        const id = (await host.getRunningDomain(step.name))?.id;
        ctx.boundary();
        // Started (again): nothing is left for the next boot; it opened the seed on the volume now.
        // When (and as which libvirt domain id): DHCP leases from before are not its addresses.
        await ctx.record({
          observedStatus: 'running', desiredState: ctx.desired!.state,
          facts: {
            restartRequired: null, seedBooted: ci && id !== undefined ? { sha256: ci.seed, domainId: id } : null,
            startedAt: id !== undefined ? { atMs, domainId: id } : null,
          },
        });
        return;
      }
      case 'vm.stop':
        await host.stopDomain(step.name, { graceful: op.graceful, timeoutMs: ctx.shutdownTimeoutMs });
        ctx.boundary();
        await ctx.record({ observedStatus: 'stopped', desiredState: ctx.desired?.state ?? 'stopped' });
        return;
      case 'vm.delete':
        await host.stopDomain(step.name, { graceful: op.graceful ?? false, timeoutMs: ctx.shutdownTimeoutMs });
        // Its seed is derived data: gone with the VM (never a data-loss hold). Before the domain, so
        // that a run interrupted in between still finds the domain, and this step runs again.
        for (const x of recordedSeeds(op, factsOf(ctx.observed, step.key))) await host.deleteVolume(x.pool, x.volume);
        await host.undefineDomain(step.name);
        ctx.boundary();
        await ctx.forgetIfUndeclared();
        return;
    }
  },

  desiredStatus: (r) => r.state,
  defaultDesiredStatus: 'running',
  observedStatus: (view, r) => listedState(view.snapshot, (s) => s.domains, r.name, 'running', 'stopped'),
  statusNote(view, r) {
    const rr = (r.facts as { restartRequired?: RestartRequired } | undefined)?.restartRequired;
    // A disk file deleted under the running VM (its pool's listing lacks it): restart required, data at stake.
    const dom = view?.snapshot.domains.find((x) => x.name === r.name);
    const disks = ((r.config as Partial<VmConfig> | undefined)?.disks ?? []).map((d) => d.path);
    const gone = view?.listedPoolPaths && dom?.active
      ? disks.filter((p) => view.listedPoolPaths!.has(posix.dirname(p)) && !view.volumeKeys.has(p)) : [];
    if (gone.length > 0) {
      const data: RestartRequired = {
        fields: ['spec.disks'], running: { 'spec.disks': gone.map((p) => `${p} (deleted, still open)`).join(', ') },
        defined: { 'spec.disks': gone.join(', ') }, domainId: dom!.id,
      };
      return { flag: 'restart required', text: deletedText(gone), data };
    }
    if (!rr) return undefined;
    // The mark holds while the domain it was set on still runs (same libvirt domain id); offline: as recorded.
    const d = view?.snapshot.domains.find((x) => x.name === r.name);
    if (view && !(d?.active && d.id === rr.domainId)) return undefined;
    return { flag: 'restart required', text: restartText(rr), data: rr };
  },
};

/**
 * A running VM whose volume or network is replaced is stopped first and started again after.
 * So is one attached to a network virtform starts again after it went down: libvirt does not
 * put a running VM's interfaces back on the bridge of a restarted network.
 */
function restartDisrupted(vms: DesiredVm[], observed: Observed, changes: ResourceChange[], opts: { gracefulStop?: boolean }): void {
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
      c = change(r, 'update', '', ownershipById(observed, r.kind, r.name, observed.domains.get(r.name)?.uuid, r.key));
      changes.push(c);
    }
    const why = `restarted because ${uses.map((k) => `${k} ${disrupted.get(k)}`).join(', ')}`;
    c.reason = c.reason ? `${c.reason}; ${why}` : why;
    // The restart of restartPolicy: OnChange is this one now.
    c.steps = c.steps.filter((s) => !(s.op === 'vm.stop' && s.restart) && !(s.op === 'vm.start'));
    if (!c.steps.some((s) => s.op === 'vm.stop')) {
      c.steps.unshift({ op: 'vm.stop', graceful: opts.gracefulStop ?? true });
      c.notes.push(stopNote(opts.gracefulStop ?? true));
    }
    if (r.state === 'running') c.steps.push({ op: 'vm.start' });
    // Restarted anyway: nothing is left for the next boot.
    c.notes = c.notes.filter((n) => !n.includes('next boot') && !n.startsWith('restarts the VM'));
  }
}

/** Why a VM's restart or start waits for another VM to release a disk (for notices), by VM name. */
const HANDOVER_WAITS = new WeakMap<Observed, Map<string, string>>();

/**
 * Read the live disks of running domains whose record has a restart pending (their persistent
 * definition no longer says what they have open): one call each, only for those.
 */
async function readLiveDisks(host: HostPort, observed: Observed, wanted: Map<string, { name: string }>): Promise<void> {
  const names = [...wanted].filter(([key, w]) => pendingRestart(observed, key, w.name) !== undefined).map(([, w]) => w.name);
  if (names.length === 0) return;
  const map = new Map<string, string[]>();
  await Promise.all(names.map(async (n) => {
    const live = await host.getRunningDomain(n);
    if (live) map.set(n, live.disks.map((x) => x.path));
  }));
  observed.liveDisks = map;
}

/**
 * A disk changes hands only after its holder let go of it: a VM's start (a start, or the start of
 * a restart) that opens a disk another running domain has open waits for that domain's stop or
 * delete in the same plan (a plan edge, not timing: QEMU's image lock would refuse the start).
 * When the holder is not stopped by this plan (it keeps running: restartPolicy Never, or not
 * virtform's), a running VM is not restarted (its restart stays pending, and happens at a later
 * run once the disk is free) and a stopped one is not started, with a note saying why.
 */
function orderDiskHandover(vms: DesiredVm[], observed: Observed, changes: ResourceChange[]): void {
  const holders = runningDiskHolders(observed);
  if (holders.size === 0) return;
  const waits = new Map<string, string>();
  for (const r of vms) {
    const blockers = new Map<string, string>();
    for (const d of r.config.disks) for (const h of holders.get(d.path) ?? []) if (h !== r.name && !blockers.has(h)) blockers.set(h, d.path);
    if (blockers.size === 0) continue;
    const at = changes.findIndex((x) => x.key === r.key);
    const c = at >= 0 ? changes[at] : undefined;
    const releasing: string[] = [];
    const keeping: [string, string][] = [];
    for (const [h, path] of blockers) {
      const hc = changes.find((x) => x.kind === 'VirtualMachine' && x.name === h && x.action !== 'conflict' && !x.held);
      if (hc && hc.steps.some((s) => s.op === 'vm.stop' || s.op === 'vm.delete')) releasing.push(hc.key);
      else keeping.push([h, path]);
    }
    const why = keeping.map(([h, path]) => `${path} is in use by running VM ${h}`).join(', ');
    if (keeping.length > 0) waits.set(r.name, `waits until ${why.replace(/ is in use by running VM /g, ' is released by VM ')} (stopped, or restarted without it)`);
    if (!c || c.action === 'conflict' || !c.steps.some((s) => s.op === 'vm.start')) continue;
    if (releasing.length > 0) c.waitFor = [...(c.waitFor ?? []), { op: 'vm.start', keys: releasing }];
    // Stopped for a replaced volume or restarted network: that stop is needed whatever happens.
    const forced = c.steps.some((s) => s.op === 'vm.stop' && !s.restart);
    if (keeping.length === 0 || forced) continue;
    const wasRunning = observed.domains.get(r.name)?.active ?? false;
    if (wasRunning) {
      // Not stopped at all: stopping it would leave it down (its start would fail on the image lock).
      c.steps = c.steps.filter((s) => s.op !== 'vm.stop' && s.op !== 'vm.start');
      c.notes = c.notes.filter((n) => !n.startsWith('restarts the VM') && !n.startsWith('the running VM is'));
      c.notes.push(`not restarted now: ${why}; the restart is pending and happens once it is released`);
    } else {
      c.steps = c.steps.filter((s) => s.op !== 'vm.start');
      c.notes.push(`not started: ${why}; it starts once that VM has released it (stopped, or restarted without it)`);
    }
    if (c.steps.length === 0 && wasRunning) changes.splice(at, 1);
  }
  // The restart's stop waits too, unless the holder waits for this VM in turn (two VMs swapping
  // disks: both stop first): should the holder's stop fail, this VM keeps running.
  const startWaits = (c: ResourceChange): string[] => (c.waitFor ?? []).filter((w) => w.op === 'vm.start').flatMap((w) => w.keys);
  for (const c of changes) {
    if (c.kind !== 'VirtualMachine' || !c.steps.some((s) => s.op === 'vm.stop' && s.restart)) continue;
    const keys = startWaits(c).filter((k) => !startWaits(changes.find((x) => x.key === k) ?? c).includes(c.key));
    if (keys.length > 0) c.waitFor = [...(c.waitFor ?? []), { op: 'vm.stop', keys }];
  }
  if (waits.size > 0) HANDOVER_WAITS.set(observed, waits);
}

/**
 * The `<domain type>` a definition gets. Precedence: the VM's `spec.domainType`; then (a fleet's
 * Host, once there is one); for an existing domain the type it has (so a run with another
 * `--domain-type`, or an upgrade, never flips it); for a new one the host's choice (`--domain-type`,
 * default auto: kvm when offered).
 */
async function domainTypeFor(host: HostPort, d: DesiredVm, current: DomainDetail | undefined, exists: boolean): Promise<'kvm' | 'qemu'> {
  if (d.config.domainType) return d.config.domainType;
  const have = current?.type ?? (exists ? (await host.getDomain(d.name))?.type : undefined);
  if (have === 'kvm' || have === 'qemu') return have;
  return host.domainType();
}

/** The plain words for disk files deleted under a running VM. */
function deletedText(paths: string[]): string {
  return `restart required: ${paths.join(', ')} ${paths.length > 1 ? 'were' : 'was'} deleted outside virtform while the VM runs; ` +
    'the guest keeps writing into the deleted file, so everything it wrote since the deletion lives only there and will be lost at its next stop ' +
    '(recreating the file is a data-loss step: reconcile --allow-data-loss; the VM then boots from the new, empty file at its next start)';
}

/**
 * Disk files of a running VM that are gone from their pool's listing (seen through libvirt alone:
 * the pool's directory re-read, no /proc): QEMU still has them open.
 */
export function deletedOpenDisks(observed: Observed, name: string, paths: string[]): string[] {
  if (!observed.domains.get(name)?.active) return [];
  const listed = new Map<string, { has(name: string): boolean }>();
  for (const [key, d] of observed.definitions) {
    const pool = d as { name?: unknown; path?: unknown };
    if (parseResourceKey(key).kind !== 'StoragePool' || typeof pool.path !== 'string' || typeof pool.name !== 'string') continue;
    const names = observed.volumes.get(pool.name);
    if (names) listed.set(pool.path, names);
  }
  return paths.filter((p) => listed.get(posix.dirname(p))?.has(posix.basename(p)) === false);
}

function deletedDiskNotes(observed: Observed, r: DesiredVm): string[] {
  const gone = deletedOpenDisks(observed, r.name, r.config.disks.map((d) => d.path));
  return gone.length > 0 ? [deletedText(gone)] : [];
}

/** How long the guest gets to apply a live memory change (its balloon driver moves in steps). */
const BALLOON_WAIT_MS = 10_000;
/** ... and how long a balloon that has not moved at all is waited for (no balloon driver in the guest). */
const BALLOON_STILL_MS = 3_000;

interface Unapplied {
  /** Fields the guest did not take, with what it runs with and what was asked. */
  fields: { field: string; running: number; defined: number; note: string }[];
  /** What could be checked: `memory verified`, `vCPUs not verified (no guest agent answered)`, … */
  check: string[];
  /** libvirt's id of the running domain (set when something was not applied). */
  domainId?: number;
}

/**
 * After a live change: the balloon's `actual` memory after a bounded wait (it must reach the
 * target: a guest without a balloon driver keeps its memory), and the vCPUs the guest agent sees
 * online (only when an agent answers: "not verified" otherwise).
 */
async function liveReadBack(host: HostPort, name: string, op: Extract<VmOp, { op: 'vm.live' }>, before: number | null): Promise<Unapplied> {
  const out: Unapplied = { fields: [], check: [] };
  if (op.memoryKiB !== undefined) {
    const target = op.memoryKiB;
    const close = (v: number): boolean => Math.abs(v - target) <= Math.max(1024, target / 100);
    const started = Date.now();
    let actual = await host.domainBalloonKiB(name);
    while (actual !== null && !close(actual) && Date.now() - started < BALLOON_WAIT_MS) {
      if (actual === before && Date.now() - started >= BALLOON_STILL_MS) break;
      await new Promise((r) => setTimeout(r, 250));
      actual = await host.domainBalloonKiB(name);
    }
    if (actual === null) out.check.push('memory not verified (no balloon stats)');
    else if (close(actual)) out.check.push('memory verified');
    else {
      out.check.push('memory not applied by the guest');
      out.fields.push({
        field: 'spec.memoryKiB', running: actual, defined: target,
        note: `the guest did not apply the memory change (its balloon stays at ${actual / 1024}MiB: no balloon driver in the guest?)`,
      });
    }
  }
  if (op.vcpus !== undefined) {
    const online = await host.guestOnlineVcpus(name);
    if (online === null) out.check.push('vCPUs not verified (no guest agent answered)');
    else if (online >= op.vcpus) out.check.push('vCPUs verified');
    else {
      out.check.push('vCPUs not onlined by the guest');
      out.fields.push({ field: 'spec.vcpus', running: online, defined: op.vcpus, note: `the guest has ${online} vCPUs online of ${op.vcpus}` });
    }
  }
  if (out.fields.length > 0) out.domainId = (await host.getRunningDomain(name))?.id;
  return out;
}

/** The restart-required mark with the live changes the guest did not take. */
function withUnapplied(rr: RestartRequired | null, u: Unapplied, previous: RestartRequired | undefined): RestartRequired | null {
  if (u.fields.length === 0) return rr;
  const base: RestartRequired = rr ?? { fields: [], running: {}, defined: {}, since: new Date().toISOString() };
  const out: RestartRequired = { ...base, fields: [...base.fields], running: { ...base.running }, defined: { ...base.defined }, notes: [...(base.notes ?? [])] };
  for (const f of u.fields) {
    if (!out.fields.includes(f.field)) out.fields.push(f.field);
    out.running[f.field] = f.running;
    out.defined[f.field] = f.defined;
    out.notes!.push(f.note);
  }
  out.domainId ??= u.domainId ?? previous?.domainId;
  return out;
}

/** Lists shown compactly in restart notes: `vda=/p/root.qcow2 (virtio)`, `52:54:00:…@net (virtio)`. */
const diskList = (d: DomainDetail): string => d.disks.map((x) => `${x.target}=${x.path} (${x.bus}${x.bootOrder ? `, boot ${x.bootOrder}` : ''})`).sort().join(', ');
const nicList = (d: DomainDetail): string => d.nics.map((x) => `${x.mac.toLowerCase()}@${x.network} (${x.model})`).sort().join(', ');

/**
 * What the running domain has that its persistent definition changed (taken at the next boot):
 * the running (live) definition against the persistent one, for everything that is not applied
 * live. null when nothing is left (or the domain is not running).
 */
async function restartState(
  host: HostPort, name: string, previous: RestartRequired | undefined,
  seed?: { facts: VmFacts | undefined; current: string | undefined },
): Promise<RestartRequired | null> {
  const [live, defined] = await Promise.all([host.getRunningDomain(name), host.getDomain(name)]);
  if (!live || !defined) return null;
  const pairs: [string, unknown, unknown][] = [
    ['spec.vcpus', live.vcpus, defined.vcpus],
    ['spec.maxVcpus', live.maxVcpus, defined.maxVcpus],
    ['spec.maxMemoryKiB', live.maxMemoryKiB, defined.maxMemoryKiB],
    ['domain.memballoon', live.balloon, defined.balloon],
    ['spec.boot', live.boot, defined.boot],
    // A running host-model domain shows the custom model libvirt expanded it into.
    ['spec.cpu', liveCpu(live.cpu, defined.cpu), defined.cpu],
    ['spec.graphics', graphicsOf(live), graphicsOf(defined)],
    ['spec.guestAgent', live.guestAgent, defined.guestAgent],
    ['spec.domainType', live.type, defined.type],
    // The seed the running domain opened at its start against the one on the volume now.
    ...(seed ? [['spec.cloudInit', shortDigest(bootedSeed(seed.facts, live.id)), shortDigest(seed.current)] as [string, unknown, unknown]] : []),
    ['spec.disks', diskList(live), diskList(defined)],
    ['spec.nics', nicList(live), nicList(defined)],
    // Devices attached live only (outside virtform): gone at the next boot.
    [LIVE_ONLY, liveOnlyDevices(live.xml, defined.xml).map((f) => f.field).join(', ') || undefined, undefined],
    // The running domain has what it was defined with plus an alias and a pty's path: matched.
    ['spec.extraDevices', extraDevicesMatch(defined.extraDevices ?? [], live.extraDevices ?? []) ? defined.extraDevices ?? [] : live.extraDevices ?? [], defined.extraDevices ?? []],
  ];
  const differ = pairs.filter(([, a, b]) => canonicalJson(a) !== canonicalJson(b));
  const same = previous && previous.domainId === live.id;
  // A live change the guest did not take (read back after it) stays until the domain restarts,
  // unless the definition moved to what the guest runs with.
  const kept = same && previous.notes?.length ? (['spec.memoryKiB'] as const).filter((f) =>
    previous.fields.includes(f) && previous.running[f] !== defined.memoryKiB && previous.defined[f] === defined.memoryKiB) : [];
  if (differ.length === 0 && kept.length === 0) return null;
  return {
    fields: [...differ.map(([f]) => f), ...kept],
    running: { ...Object.fromEntries(differ.map(([f, a]) => [f, a])), ...Object.fromEntries(kept.map((f) => [f, previous!.running[f]])) },
    defined: { ...Object.fromEntries(differ.map(([f, , b]) => [f, b])), ...Object.fromEntries(kept.map((f) => [f, previous!.defined[f]])) },
    since: same && previous.since ? previous.since : new Date().toISOString(),
    domainId: live.id,
    ...(kept.length > 0 ? { notes: previous!.notes } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// cloud-init seed
// ---------------------------------------------------------------------------------------------

/**
 * spec.cloudInit → the seed image and its config (digests). instance-id, when metaData does not
 * set it, is `iid-` and the first 16 hex digits of a sha256 over everything else in the seed: a
 * change of user-data, meta-data, network-config or keys gives a new instance-id, and cloud-init
 * then runs its per-instance modules again at the next boot; the same content keeps it.
 */
function cloudInitConfig(
  name: string, ci: NonNullable<VirtualMachineSpec['cloudInit']>, disks: VmConfig['disks'], ctx: BuildContext,
): { config: VmCloudInit; image: Seed } {
  const pool = ci.pool!; // the manifest layer filled in the default (the first disk's pool)
  const volume = `${name}-cidata.iso`;
  const userMeta = (ci.metaData ?? {}) as Record<string, unknown>;
  const networkConfig = ci.networkConfig as Record<string, unknown> | string | undefined;
  const rest = { name, userData: ci.userData ?? '', metaData: { ...userMeta, 'instance-id': undefined }, networkConfig: networkConfig ?? null, keys: ci.sshAuthorizedKeys ?? null };
  const instanceId = typeof userMeta['instance-id'] === 'string'
    ? userMeta['instance-id']
    : `iid-${createHash('sha256').update(canonicalJson(rest)).digest('hex').slice(0, 16)}`;
  const image = buildNoCloudSeed({
    vmName: name, userData: ci.userData, metaData: { ...userMeta, 'instance-id': instanceId }, networkConfig, sshAuthorizedKeys: ci.sshAuthorizedKeys,
  });
  const file = (n: string): string | undefined => image.files.find((f) => f.name === n)?.text;
  const nc = file('network-config');
  return {
    image,
    config: {
      pool, volume, path: posix.join(ctx.poolPath(pool), volume),
      target: diskTarget('ide', disks.filter((d) => d.bus === 'ide').length),
      seed: `sha256:${image.sha256}`, userData: digest(file('user-data') ?? ''), metaData: digest(file('meta-data') ?? ''),
      ...(nc !== undefined ? { networkConfig: digest(nc) } : {}),
      instanceId,
    },
  };
}

const seedOp = (ci: VmCloudInit): VmOp => ({ op: 'vm.seed', pool: ci.pool, volume: ci.volume, sha256: ci.seed });

/** A plan line with digests shortened (`sha256:0123456789ab…`). */
function shortLine(f: FieldChange): FieldChange {
  return { ...f, before: shortDigest(f.before), after: shortDigest(f.after) };
}

/** The seed digest the running domain `domainId` was started with, as far as virtform knows. */
function bootedSeed(facts: VmFacts | undefined, domainId: number | undefined): string | undefined {
  const b = facts?.seedBooted;
  if (b && b.domainId === domainId) return b.sha256;
  // Started before the last upload was recorded (or outside virtform): it opened what was uploaded then.
  return facts?.seed?.sha256;
}

interface SeedPlan {
  op?: VmOp;
  lines: FieldChange[];
  notes: string[];
  reason?: string;
  drift: boolean;
}

/**
 * Whether the seed volume needs building: none uploaded yet, another content or place than the
 * one uploaded last, or the volume gone from its pool's listing (drift). Its lines show digests
 * only; `[restart]`: cloud-init reads the seed at boot.
 */
function planSeed(r: DesiredVm, observed: Observed, facts: VmFacts | undefined, prev: VmConfig | undefined): SeedPlan {
  const want = r.config.cloudInit;
  const have = facts?.seed;
  const out: SeedPlan = { lines: [], notes: [], drift: false };
  if (!want) {
    if (!have) return out;
    out.op = { op: 'vm.unseed', pool: have.pool, volume: have.volume };
    out.lines.push({ field: 'spec.cloudInit.seed', before: have.sha256, after: undefined, effect: 'restart' });
    out.reason = 'cloud-init seed no longer declared';
    return out;
  }
  const listing = observed.volumes.get(want.pool);
  const missing = listing !== undefined && !listing.has(want.volume);
  const moved = !!have && (have.pool !== want.pool || have.volume !== want.volume);
  if (have && have.sha256 === want.seed && !moved && !missing) return out;
  out.op = seedOp(want);
  out.lines.push({ field: 'spec.cloudInit.seed', before: have?.sha256, after: want.seed, effect: 'restart' });
  if (have && have.sha256 === want.seed && !moved) {
    out.drift = true;
    out.lines[0]!.drift = true;
    out.reason = `cloud-init seed volume ${want.pool}/${want.volume} is missing (drift)`;
    return out;
  }
  out.reason = !have ? 'cloud-init seed to build' : moved ? 'cloud-init seed moves' : 'cloud-init seed changed';
  const before = prev?.cloudInit;
  if (before) {
    for (const k of ['userData', 'metaData', 'networkConfig', 'instanceId'] as const) {
      if (before[k] !== want[k]) out.lines.push({ field: `spec.cloudInit.${k}`, before: before[k], after: want[k], effect: 'restart' });
    }
    if (before.instanceId !== want.instanceId) out.notes.push('cloud-init will run again at next boot (instance-id changed)');
    else if (have && have.sha256 !== want.seed) out.notes.push('instance-id unchanged (set in metaData): cloud-init reads the new seed at next boot without running its per-instance modules again');
  }
  return out;
}

/** Seed volumes created by this run (keyed by its observation): a retry may write over them. */
const SEEDS_MADE = new WeakMap<Observed, Set<string>>();
function seedsMade(observed: Observed): Set<string> {
  let s = SEEDS_MADE.get(observed);
  if (!s) SEEDS_MADE.set(observed, (s = new Set()));
  return s;
}

/** Whether the seed volume `pool/volume` is virtform's: recorded as the VM's seed, or named by an interrupted step of the VM. */
function seedIsOurs(observed: Observed, key: string, pool: string, volume: string): boolean {
  const seed = factsOf(observed, key)?.seed;
  if (seed && seed.pool === pool && seed.volume === volume) return true;
  return (observed.openJournal.get(key) ?? []).some((j) => j.intent.pool === pool && j.intent.volume === volume);
}

/**
 * The seed's fixed name (`<vm>-cidata.iso`) taken by a volume virtform did not create: a conflict
 * (the seed would overwrite it, and deleting the VM would delete it) unless the VM is adopted.
 */
function seedNameTaken(r: DesiredVm, observed: Observed, own: Ownership): ResourceChange | undefined {
  const ci = r.config.cloudInit;
  if (!ci || r.adopt) return undefined;
  const existing = observed.volumes.get(ci.pool)?.get(ci.volume);
  if (!existing || seedIsOurs(observed, r.key, ci.pool, ci.volume)) return undefined;
  return change(r, 'conflict', `the cloud-init seed's volume ${ci.pool}/${ci.volume} already exists and virtform did not create it (${existing.key}); remove or rename it, or adopt the VM (metadata.adopt: true)`, own);
}

/** The seed volumes a VM's record or journal names (a delete removes them all). */
function recordedSeeds(op: Extract<VmOp, { op: 'vm.delete' }>, facts: VmFacts | undefined): { pool: string; volume: string }[] {
  const all = [op.seed, facts?.seed].filter((x): x is { pool: string; volume: string } => !!x);
  return all.filter((x, i) => all.findIndex((y) => y.pool === x.pool && y.volume === x.volume) === i);
}

async function* once(data: Uint8Array): AsyncIterable<Uint8Array> {
  yield data;
}

/** spec.boot → `{ boot }` when it declares anything beyond the defaults (BIOS, no kernel), else `{}`. */
function bootConfig(b: NonNullable<VirtualMachineSpec['boot']>, ctx: BuildContext): { boot?: VmBoot } {
  const out: VmBoot = {};
  if (b.firmware === 'uefi') out.firmware = 'uefi';
  if (b.kernelVolume !== undefined) {
    out.kernelVolume = b.kernelVolume;
    out.kernel = ctx.volumePath(b.kernelVolume);
  } else if (b.kernel !== undefined) out.kernel = b.kernel;
  if (b.initrdVolume !== undefined) {
    out.initrdVolume = b.initrdVolume;
    out.initrd = ctx.volumePath(b.initrdVolume);
  } else if (b.initrd !== undefined) out.initrd = b.initrd;
  if (b.cmdline) out.cmdline = b.cmdline;
  return Object.keys(out).length > 0 ? { boot: out } : {};
}

function liveCpu(live: DomainDetail['cpu'], defined: DomainDetail['cpu']): DomainDetail['cpu'] {
  return defined?.mode === 'host-model' && live?.mode === 'custom' ? defined : live;
}

function stopNote(graceful: boolean): string {
  return graceful
    ? 'the running VM is shut down (ACPI) and forced off if it is still running after --shutdown-timeout'
    : 'the running VM is forced off (no graceful shutdown)';
}
