/**
 * The VM's field table: one row per field, the only list of them. A row says where the user writes
 * the field, how it is read from the domain definition (the plan lines it gives, compared with the
 * desired config's by the generic `compareConfigs`), how a change takes effect on a running domain
 * (`live`, `restart`), the live setter when there is one, and what the running domain is compared
 * on for the restart-required mark (`booted`). A new VM field is one row here (plus build, the
 * XML and the schema). Effects measured on QEMU 7.2 TCG, libvirt 9.0.
 */
import type { DomainDetail } from '../../../model/definitions.js';
import { extraDevicesMatch } from '../../../libvirt/xml/extra-devices.js';
import { canonicalJson } from '../../core/resource.js';
import { compareConfigs, liveOnlyDevices, type ConfigDifference, type FieldChange } from '../../core/change.js';
import type { HostPort } from '../../ports.js';
import type { ChangeEffect, FieldSpec } from '../../core/kind.js';
import { bootedSeed, shortDigest } from './facts.js';
import { diskView, lower, matchDisks, type NicMatch } from './match.js';
import type { VmConfig, VmFacts, VmOp } from './types.js';

/** Plan lines of one field, in order: `[line name, value]`. */
export type Lines = [name: string, value: unknown][];

/** What a row reads a definition with: the NICs matched to the desired ones (by MAC), the disks (by path, then target). */
export interface VmMatch {
  nics: NicMatch;
  disks: Map<number, number>;
}

/** What an effect is decided on: the definition, the desired config, and the restart-required fields still pending. */
export interface EffectCtx {
  cur: DomainDetail;
  want: VmConfig;
  pending: Set<string>;
  /** The disks and NICs of `want` matched with the definition's (hot-plug decides on it). */
  match: VmMatch;
  /** Disk paths another running domain has open (not hot-plugged: it changes hands at a restart, after its holder let go). */
  heldElsewhere?: ReadonlySet<string>;
  /** The domain runs and stays running: only then are devices hot-plugged (a stopped one is just defined). */
  runs?: boolean;
}

/** The running domain against its persistent definition (and the seed it booted with against the one uploaded). */
export interface BootCtx {
  live: DomainDetail & { id: number };
  defined: DomainDetail;
  seed?: { facts: VmFacts | undefined; current: string | undefined };
}

export type LiveOp = Extract<VmOp, { op: 'vm.live' }>;
type DetachOp = Extract<VmOp, { op: 'vm.detach' }>;
type AttachOp = Extract<VmOp, { op: 'vm.attach' }>;
type LiveKey = Exclude<keyof LiveOp, 'op'>;

export interface VmField {
  /** The VmConfig field; `balloon` and `liveOnly` are parts of the definition the manifest does not declare. */
  field: keyof VmConfig | 'balloon' | 'liveOnly';
  /** Where the user writes it. */
  manifest: string;
  unit?: 'KiB';
  /** How a change takes effect on a running domain (a function gets the {@link EffectCtx}). */
  effect: ChangeEffect | ((before: unknown, after: unknown, ctx?: unknown) => ChangeEffect);
  /** The desired config's plan lines of this field (absent: not compared with the definition). */
  want?(c: VmConfig, m: VmMatch): Lines;
  /** The same lines as the definition has them. */
  read?(d: DomainDetail, c: VmConfig, m: VmMatch): Lines;
  /** Name in the restart-required mark (default `spec.<field>`). */
  mark?: string;
  /** Running against defined, for the restart-required mark; absent: applied live (or not compared). */
  booted?(b: BootCtx): [running: unknown, defined: unknown] | undefined;
  /** A difference in a domain defined by an older virtform (which lacked it) is a change of this version, not drift. */
  olderVirtform?(facts: VmFacts | undefined): boolean;
  /** Set on a running domain: the `vm.live` operand and the host call. */
  live?: { key: LiveKey; value(c: VmConfig): LiveOp[LiveKey]; apply(host: HostPort, name: string, v: NonNullable<LiveOp[LiveKey]> | null): Promise<void> };
}

/** What libvirt writes into an x86 definition that has no `<cpu>`. */
export function isDefaultCpu(cpu: { mode: string; model?: string }): boolean {
  return cpu.mode === 'custom' && cpu.model === 'qemu64';
}

/** The declared part of a definition's graphics: undefined (none), one `{type, listen}`, or the list when there are several. */
export function graphicsOf(d: Pick<DomainDetail, 'graphics'>): unknown {
  const g = (d.graphics ?? []).map((x) => ({ type: x.type, listen: x.listen }));
  return g.length === 0 ? undefined : g.length === 1 ? g[0] : g;
}

/** A running host-model domain shows the custom model libvirt expanded it into. */
function liveCpu(live: DomainDetail['cpu'], defined: DomainDetail['cpu']): DomainDetail['cpu'] {
  return defined?.mode === 'host-model' && live?.mode === 'custom' ? defined : live;
}

/** Lists shown compactly in restart notes: `vda=/p/root.qcow2 (virtio)`, `52:54:00:…@net (virtio)`. */
const diskList = (d: DomainDetail): string => [
  ...d.disks.map((x) => `${x.target}=${x.path} (${x.bus}${x.bootOrder ? `, boot ${x.bootOrder}` : ''})`),
  // CD-ROMs (declared cdrom disks and the seed) too: a change of them waits for the next boot.
  ...(d.cdroms ?? []).map((x) => `${x.target}=${x.path} (${x.bus}, cdrom${x.bootOrder ? `, boot ${x.bootOrder}` : ''})`),
].sort().join(', ');
const nicList = (d: DomainDetail): string => d.nics.map((x) => `${x.mac.toLowerCase()}@${x.network} (${x.model})`).sort().join(', ');

/** Field of the restart-required mark for devices a running domain has that its definition lacks. */
export const LIVE_ONLY = 'devices (live only)';

const shapePending = (p: Set<string>): boolean => [...p].some((f) => /^spec\.max|^domain\./.test(f));

/** A field shown as one plan line. */
function one(name: string, want: (c: VmConfig) => unknown, read: (d: DomainDetail, c: VmConfig) => unknown): Pick<VmField, 'want' | 'read'> {
  return { want: (c) => [[name, want(c)]], read: (d, c) => [[name, read(d, c)]] };
}
const same = (get: (d: DomainDetail) => unknown) => (b: BootCtx): [unknown, unknown] => [get(b.live), get(b.defined)];

const DISK_KEYS = ['volume', 'path', 'format', 'bus', 'target', 'bootOrder', 'device'] as const;

export const VM_FIELDS: readonly VmField[] = [
  {
    // Plugging vCPUs up to the maximum works without a guest; unplugging needs the guest (QEMU refuses it under TCG).
    field: 'vcpus', manifest: 'spec.vcpus',
    effect: (_b, _a, w) => {
      if (!w) return 'restart';
      const { cur, want, pending } = w as EffectCtx;
      return want.vcpus > cur.vcpus && cur.maxVcpus === (want.maxVcpus ?? want.vcpus) && !shapePending(pending) ? 'live' : 'restart';
    },
    ...one('spec.vcpus', (c) => c.vcpus, (d) => d.vcpus),
    booted: same((d) => d.vcpus),
    live: { key: 'vcpus', value: (c) => c.vcpus, apply: (host, name, v) => host.setDomainVcpus(name, v as number) },
  },
  {
    field: 'maxVcpus', manifest: 'spec.maxVcpus', effect: 'restart',
    ...one('spec.maxVcpus', (c) => c.maxVcpus ?? c.vcpus, (d) => d.maxVcpus), booted: same((d) => d.maxVcpus),
  },
  {
    // The balloon target changes live within the maximum (a guest balloon driver then gives the memory back).
    field: 'memoryKiB', manifest: 'spec.memory', unit: 'KiB',
    effect: (_b, _a, w) => {
      if (!w) return 'restart';
      const { cur, want, pending } = w as EffectCtx;
      return cur.maxMemoryKiB === (want.maxMemoryKiB ?? want.memoryKiB) && cur.balloon === 'virtio' && !shapePending(pending) ? 'live' : 'restart';
    },
    ...one('spec.memoryKiB', (c) => c.memoryKiB, (d) => d.memoryKiB),
    live: { key: 'memoryKiB', value: (c) => c.memoryKiB, apply: (host, name, v) => host.setDomainMemory(name, v as number) },
  },
  {
    field: 'maxMemoryKiB', manifest: 'spec.maxMemory', unit: 'KiB', effect: 'restart',
    ...one('spec.maxMemoryKiB', (c) => c.maxMemoryKiB ?? c.memoryKiB, (d) => d.maxMemoryKiB), booted: same((d) => d.maxMemoryKiB),
  },
  {
    field: 'description', manifest: 'spec.description', effect: 'live',
    ...one('spec.description', (c) => c.description || undefined, (d) => d.description || undefined),
    live: { key: 'description', value: (c) => c.description || null, apply: (host, name, v) => host.setDomainDescription(name, (v as string | null) ?? undefined) },
  },
  {
    // Always virtio (not declared): an older virtform defined domains without a balloon.
    field: 'balloon', manifest: '(none: always virtio)', effect: 'restart', mark: 'domain.memballoon',
    ...one('domain.memballoon', () => 'virtio', (d) => d.balloon), booted: same((d) => d.balloon),
    olderVirtform: (facts) => facts?.balloon !== 'virtio',
  },
  {
    // QEMU reads firmware, kernel, initrd and command line when it starts.
    field: 'boot', manifest: 'spec.boot', effect: 'restart',
    want: (c) => [['spec.boot.firmware', c.boot?.firmware ?? 'bios'], ['spec.boot.kernel', c.boot?.kernel], ['spec.boot.initrd', c.boot?.initrd], ['spec.boot.cmdline', c.boot?.cmdline]],
    read: (d) => [['spec.boot.firmware', d.boot?.firmware === 'efi' ? 'uefi' : 'bios'], ['spec.boot.kernel', d.boot?.kernel], ['spec.boot.initrd', d.boot?.initrd], ['spec.boot.cmdline', d.boot?.cmdline]],
    booted: same((d) => d.boot),
  },
  {
    // Undeclared: libvirt's default, which it writes into the definition as `custom` qemu64.
    field: 'cpu', manifest: 'spec.cpu', effect: 'restart',
    ...one('spec.cpu', (c) => c.cpu, (d, c) => (d.cpu && !(c.cpu === undefined && isDefaultCpu(d.cpu)) ? d.cpu : undefined)),
    booted: (b) => [liveCpu(b.live.cpu, b.defined.cpu), b.defined.cpu],
  },
  {
    // Type and listen address only: libvirt fills in the port of a running domain (autoport).
    field: 'graphics', manifest: 'spec.graphics', effect: 'restart',
    ...one('spec.graphics', (c) => c.graphics, (d) => graphicsOf(d)), booted: same(graphicsOf),
  },
  {
    // Nor did an older virtform define the guest agent channel: adding it is a change of this version, not drift.
    field: 'guestAgent', manifest: 'spec.guestAgent', effect: 'restart',
    ...one('spec.guestAgent', (c) => c.guestAgent ?? true, (d) => d.guestAgent), booted: same((d) => d.guestAgent),
    olderVirtform: (facts) => facts?.guestAgent === undefined,
  },
  {
    // QEMU runs under KVM or TCG from its start. Compared only when declared: an undeclared type is
    // whatever the domain has (never flipped by a run's --domain-type).
    field: 'domainType', manifest: 'spec.domainType', effect: 'restart',
    want: (c) => (c.domainType !== undefined ? [['spec.domainType', c.domainType]] : []),
    read: (d, c) => (c.domainType !== undefined ? [['spec.domainType', d.type]] : []),
    booted: same((d) => d.type),
  },
  {
    // cloud-init reads its seed when the guest boots; a running domain keeps the seed file it opened.
    // Its seed is planned apart (`seed.ts`); here: the CD-ROM, and the seed the running domain
    // opened at its start against the one on the volume now.
    field: 'cloudInit', manifest: 'spec.cloudInit', effect: 'restart',
    ...one('spec.cloudInit.cdrom',
      (c) => (c.cloudInit ? `${c.cloudInit.target}=${c.cloudInit.path} (ide)` : undefined),
      (d) => (d.cdroms ?? []).map((x) => `${x.target}=${x.path} (${x.bus})`).sort().join(', ') || undefined),
    booted: (b) => (b.seed ? [shortDigest(bootedSeed(b.seed.facts, b.live.id)), shortDigest(b.seed.current)] : undefined),
  },
  {
    // Matched by source path, then target, never by position.
    field: 'disks', manifest: 'spec.disks',
    // Hot-plug (issue 24): virtio disks added or removed, the others unchanged, are attached or detached live.
    effect: (_b, _a, w) => (w && hotPlug(w as EffectCtx).disks ? 'live' : 'restart'),
    want: (c) => c.disks.flatMap((d, i) => DISK_KEYS.map((k): [string, unknown] => [`spec.disks[${i}].${k}`, d[k]])),
    read: (cur, c, m) => [
      ...c.disks.flatMap((d, i): Lines => {
        const j = m.disks.get(i);
        const x = j === undefined ? undefined : cur.disks[j]!;
        // The volume is named by its path: a line of its own only for a disk that is not there.
        return x ? [[`spec.disks[${i}].volume`, d.volume], [`spec.disks[${i}].path`, x.path], [`spec.disks[${i}].format`, x.format ?? d.format],
          [`spec.disks[${i}].bus`, x.bus], [`spec.disks[${i}].target`, x.target], [`spec.disks[${i}].bootOrder`, x.bootOrder], [`spec.disks[${i}].device`, x.device]] : [];
      }),
      ...cur.disks.flatMap((x, j): Lines => ([...m.disks.values()].includes(j) ? [] : [[`spec.disks[${x.target}]`, { path: x.path, bus: x.bus, bootOrder: x.bootOrder, ...(x.device ? { device: x.device } : {}) }]])),
    ],
    booted: same(diskList),
  },
  {
    // Matched by MAC (declared, or the one virtform chose and recorded, or the current one).
    field: 'nics', manifest: 'spec.nics',
    // Hot-plug (issue 24): NICs added or removed, the others unchanged, are attached or detached live.
    effect: (_b, _a, w) => (w && hotPlug(w as EffectCtx).nics ? 'live' : 'restart'),
    want: (c, m) => c.nics.flatMap((n, i): Lines => [[`spec.nics[${i}].network`, n.network], [`spec.nics[${i}].model`, n.model],
      ...(m.nics.macs[i] !== undefined ? [[`spec.nics[${i}].mac`, m.nics.macs[i]] as [string, unknown]] : [])]),
    read: (cur, c, m) => [
      ...c.nics.flatMap((_n, i): Lines => {
        const j = m.nics.pairs.get(i);
        const x = j === undefined ? undefined : cur.nics[j]!;
        return x ? [[`spec.nics[${i}].network`, x.network], [`spec.nics[${i}].model`, x.model],
          ...(m.nics.macs[i] !== undefined ? [[`spec.nics[${i}].mac`, lower(x.mac)] as [string, unknown]] : [])] : [];
      }),
      ...cur.nics.flatMap((x, j): Lines => ([...m.nics.pairs.values()].includes(j) ? [] : [[`spec.nics[${x.mac}]`, { network: x.network, model: x.model, mac: x.mac }]])),
    ],
    booted: same(nicList),
  },
  {
    // Devices attached to the running domain only (outside virtform): gone at the next boot. Found
    // as drift by the diff (`liveOnlyDevices`); named in the restart-required mark.
    field: 'liveOnly', manifest: '(none: devices attached live)', effect: 'restart', mark: LIVE_ONLY,
    booted: (b) => [liveOnlyDevices(b.live.xml, b.defined.xml).map((f) => f.field).join(', ') || undefined, undefined],
  },
  {
    // Matched, not compared as text: libvirt adds to what it stores (a PCI address, a serial's
    // target type); the running domain has that plus an alias and a pty's path. Kept simple: a
    // changed list is defined and taken at the next boot (no live attach/detach).
    field: 'extraDevices', manifest: 'spec.extraDevices', effect: 'restart',
    want: (c) => [['spec.extraDevices', c.extraDevices?.length ? c.extraDevices : undefined]],
    read: (d, c) => {
      const have = d.extraDevices ?? [];
      const want = c.extraDevices ?? [];
      return [['spec.extraDevices', extraDevicesMatch(want, have) ? (want.length ? want : undefined) : have.length ? have : undefined]];
    },
    booted: (b) => [extraDevicesMatch(b.defined.extraDevices ?? [], b.live.extraDevices ?? []) ? b.defined.extraDevices ?? [] : b.live.extraDevices ?? [], b.defined.extraDevices ?? []],
  },
];

/** The lines of two `Lines` lists that differ (`before` = the definition's), in the desired list's order, then lines only the definition has. */
function lineChanges(before: unknown, after: unknown): FieldChange[] {
  const b = before as Lines;
  const a = after as Lines;
  const had = new Map(b);
  const out: FieldChange[] = [];
  for (const [field, v] of a) if (canonicalJson(had.get(field)) !== canonicalJson(v)) out.push({ field, before: had.get(field), after: v });
  const names = new Set(a.map(([n]) => n));
  for (const [field, v] of b) if (!names.has(field) && v !== undefined) out.push({ field, before: v, after: undefined });
  return out;
}

type View = Record<VmField['field'], Lines>;
const COMPARED = VM_FIELDS.filter((f) => f.want && f.read);
const SPEC: readonly FieldSpec<View>[] = COMPARED.map((f) => ({ field: f.field, manifest: f.manifest, unit: f.unit, effect: f.effect, lines: lineChanges }));

/** The field spec of `KindHandler.fields`: the table's rows of the config. */
export const VM_CONFIG_FIELDS = VM_FIELDS.filter((f) => f.field !== 'balloon' && f.field !== 'liveOnly')
  .map(({ field, manifest, unit, effect }) => ({ field, manifest, ...(unit ? { unit } : {}), effect })) as FieldSpec<VmConfig>[];

export const vmField = (field: string): VmField | undefined => VM_FIELDS.find((f) => f.field === field);

/**
 * Differences between the definition and a config, per field of the table (the generic
 * `compareConfigs`), each with its plan lines (`before` = the definition's) and effect.
 * `pending`: restart-required fields not yet taken by the running domain.
 */
export function compareVm(
  cur: DomainDetail, want: VmConfig, nics: NicMatch, pending: Set<string> = new Set(),
  /** Hot-plug: whether the domain runs and stays running, and the disks other running domains hold. */
  hot?: { runs: boolean; heldElsewhere: ReadonlySet<string> },
): ConfigDifference[] {
  cur = diskView(cur, want);
  const m: VmMatch = { nics, disks: matchDisks(want.disks, cur.disks) };
  const desired = {} as View;
  const actual = {} as View;
  for (const f of COMPARED) {
    desired[f.field] = f.want!(want, m);
    actual[f.field] = f.read!(cur, want, m);
  }
  const ctx: EffectCtx = { cur, want, pending, match: m, ...(hot ? { heldElsewhere: hot.heldElsewhere, runs: hot.runs } : {}) };
  return compareConfigs(SPEC, desired, actual, undefined, ctx);
}

/** The plan lines of differences, each with its field's effect. */
export function linesOf(diffs: ConfigDifference[]): FieldChange[] {
  return diffs.flatMap((d) => d.changes.map((c) => ({ ...c, effect: d.effect })));
}

/** The `vm.live` step for the fields whose change is applied live. */
export function liveOp(fields: string[], c: VmConfig): LiveOp {
  const op: LiveOp = { op: 'vm.live' };
  for (const f of VM_FIELDS) if (f.live && fields.includes(f.field)) (op as Record<string, unknown>)[f.live.key] = f.live.value(c);
  return op;
}

/** Carry out a `vm.live` step's changes, in the table's order. */
export async function applyLive(host: HostPort, name: string, op: LiveOp): Promise<void> {
  for (const f of VM_FIELDS) {
    const v = f.live ? op[f.live.key] : undefined;
    if (f.live && v !== undefined) await f.live.apply(host, name, v);
  }
}

/** What the running domain has that differs from its persistent definition, per restart-mark name. */
export function bootDifferences(b: BootCtx): [string, unknown, unknown][] {
  return VM_FIELDS.flatMap((f): [string, unknown, unknown][] => {
    const v = f.booted?.(b);
    return v ? [[f.mark ?? `spec.${f.field}`, v[0], v[1]]] : [];
  }).filter(([, a, b2]) => canonicalJson(a) !== canonicalJson(b2));
}

// --- hot-plug (issue 24; helper restart) -----------------------------------------------------

/** What a running domain gets attached and detached, per device list; undefined: that list's change needs a restart. */
export interface HotPlug {
  disks?: { attach: AttachOp['disks']; detach: DetachOp['disks'] };
  nics?: { attach: AttachOp['nics']; detach: DetachOp['nics'] };
}

/**
 * Which changes of the disks and NICs are hot-plugged: a list whose only differences are devices
 * added or removed (each matched device unchanged) — disks on the virtio bus without a boot order
 * (sata and ide disks are not hot-pluggable on the `pc` machine; a boot order is read at boot),
 * NICs of any model — while no change of that list is pending on the running domain (its restart
 * mark: a detach the guest did not complete, a change left for the next boot).
 */
export function hotPlug({ cur, want, pending, match, heldElsewhere, runs }: EffectCtx): HotPlug {
  const blocked = !runs || pending.has(LIVE_ONLY);
  const out: HotPlug = {};
  disks: if (!blocked && !pending.has('spec.disks')) {
    const attach: AttachOp['disks'] = [];
    const detach: DetachOp['disks'] = [];
    for (const [i, d] of want.disks.entries()) {
      const j = match.disks.get(i);
      if (j === undefined) {
        if (d.bus !== 'virtio' || d.bootOrder !== undefined || heldElsewhere?.has(d.path)) break disks;
        attach.push({ path: d.path, format: d.format, bus: 'virtio', target: d.target });
        continue;
      }
      const x = cur.disks[j]!;
      if (x.path !== d.path || (x.format ?? d.format) !== d.format || x.bus !== d.bus || x.target !== d.target || x.bootOrder !== d.bootOrder || x.device !== d.device) break disks;
    }
    const kept = new Set(match.disks.values());
    for (const [j, x] of cur.disks.entries()) {
      if (kept.has(j)) continue;
      if (x.bus !== 'virtio' || x.device !== undefined) break disks;
      detach.push({ path: x.path, format: (x.format ?? 'raw') as AttachOp['disks'][number]['format'], bus: 'virtio', target: x.target });
    }
    if (attach.length + detach.length > 0) out.disks = { attach, detach };
  }
  nics: if (!blocked && !pending.has('spec.nics')) {
    const attach: AttachOp['nics'] = [];
    const detach: DetachOp['nics'] = [];
    for (const [i, n] of want.nics.entries()) {
      const j = match.nics.pairs.get(i);
      const mac = match.nics.macs[i];
      if (j === undefined) {
        attach.push({ network: n.network, model: n.model, ...(mac ? { mac } : {}) });
        continue;
      }
      const x = cur.nics[j]!;
      if (x.network !== n.network || x.model !== n.model || (mac !== undefined && lower(x.mac) !== mac)) break nics;
    }
    const kept = new Set(match.nics.pairs.values());
    for (const [j, x] of cur.nics.entries()) if (!kept.has(j)) detach.push({ network: x.network, model: x.model, mac: x.mac.toLowerCase() });
    if (attach.length + detach.length > 0) out.nics = { attach, detach };
  }
  return out;
}

/** The match `compareVm` decides effects on (disks by path then target, NICs as given). */
export function vmMatch(cur: DomainDetail, want: VmConfig, nics: NicMatch): VmMatch {
  return { nics, disks: matchDisks(want.disks, diskView(cur, want).disks) };
}
