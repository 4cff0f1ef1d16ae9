/**
 * What adopting a foreign domain would rewrite (issue 24): its definition now (libvirt's inactive
 * XML) against the definition virtform would define for it (`buildDomainXml` of the manifest),
 * as libvirt would store that one.
 *
 * virtform's definition is what `buildDomainXml` writes plus what libvirt adds to it on define
 * for an x86_64 `pc` domain, measured on libvirt 9.0 / QEMU 7.2: PCI and drive addresses, the
 * `pc` machine type expanded (`pc-i440fx-7.2`), `<clock offset='utc'/>`, the emulator, the
 * controllers (`pci-root`, `piix3-uhci` USB, IDE, virtio-serial for a virtio channel), the PS/2
 * mouse and keyboard, an `<audio>` backend (`none`; `spice` with SPICE graphics), with graphics a `cirrus` video, the serial port's
 * `isa-serial` target model, a graphics port `-1`. Everything else of the current definition that
 * differs is a difference: an element virtform would drop (`dropped by adoption`), one it would
 * add (`added by adoption`), one it would write otherwise (`rewritten by adoption`).
 *
 * Devices are compared as multisets of canonical fragments (`extra-devices.ts`), without their
 * `<address>` and `<alias>` (libvirt assigns them); other top-level elements by name. What the
 * field-level comparison already names (vCPUs, memory, description, the disks and NICs' sources,
 * targets, formats and models, the CPU mode and model, graphics, boot kernel/firmware) is left to
 * it: `explained` says whether it found a difference in disks or NICs (their elements are then
 * not compared again).
 */
import { canonicalFragment, fragFromNode, type Frag } from './extra-devices.js';
import { OWNER_NS } from './marker.js';
import { parseRoot } from './xml-util.js';

export type AdoptChange = 'dropped by adoption' | 'added by adoption' | 'rewritten by adoption';

export interface AdoptDifference {
  /** Where (`devices/video`, `features`, `os/boot`). */
  path: string;
  change: AdoptChange;
  /** The element on the host now (dropped, rewritten). */
  before?: string;
  /** The element virtform would define (added, rewritten). */
  after?: string;
}

/** Top-level elements compared by the field-level comparison (or identity: name, uuid). */
const FIELD_LEVEL = new Set(['name', 'uuid', 'memory', 'currentMemory', 'vcpu', 'description', 'metadata', 'os', 'cpu', 'devices']);
/** `<os>` children the field-level comparison covers (`spec.boot`), or libvirt fills in for firmware autoselection. */
const OS_FIELD_LEVEL = new Set(['type', 'loader', 'nvram', 'firmware', 'kernel', 'initrd', 'cmdline']);
/** Devices the field-level comparison names (when it found a difference in them, they are not compared again). */
const DISK_NIC = new Set(['disk', 'interface']);

function strip(f: Frag): Frag {
  return { ...f, children: f.children.filter((c) => c.name !== 'address' && c.name !== 'alias').map(strip) };
}

/** libvirt's expansions of what virtform writes, undone on the host's side so both compare equal. */
function normalizeDevice(f: Frag): Frag {
  if (f.name === 'serial' || f.name === 'console') {
    return {
      ...f,
      children: f.children.map((c) => {
        if (c.name !== 'target') return c;
        const attrs = { ...c.attrs };
        if (f.name === 'serial' && attrs.type === 'isa-serial') delete attrs.type;
        return { ...c, attrs, children: c.children.filter((m) => !(m.name === 'model' && m.attrs.name === 'isa-serial')) };
      }),
    };
  }
  if (f.name === 'graphics' && f.attrs.autoport === 'yes' && f.attrs.port === '-1') {
    const attrs = { ...f.attrs };
    delete attrs.port;
    return { ...f, attrs };
  }
  return f;
}

const frag = (xml: string): Frag => {
  const root = parseRoot(xml, 'domain');
  return fragFromNode('domain', root);
};

/** What libvirt adds to the devices of the definition virtform builds (x86_64 `pc`). */
function libvirtDefaults(built: Frag): Frag[] {
  const devices = built.children.find((c) => c.name === 'devices');
  const has = (name: string, pred: (f: Frag) => boolean = () => true): boolean => !!devices?.children.some((c) => c.name === name && pred(c));
  const el = (name: string, attrs: Record<string, string>, children: Frag[] = []): Frag => ({ name, attrs, children, text: '' });
  const out: Frag[] = [
    el('controller', { type: 'usb', index: '0', model: 'piix3-uhci' }),
    el('controller', { type: 'pci', index: '0', model: 'pci-root' }),
    el('input', { type: 'mouse', bus: 'ps2' }),
    el('input', { type: 'keyboard', bus: 'ps2' }),
  ];
  if (has('disk', (c) => c.children.some((t) => t.name === 'target' && t.attrs.bus === 'ide'))) out.push(el('controller', { type: 'ide', index: '0' }));
  if (has('channel', (c) => c.children.some((t) => t.name === 'target' && t.attrs.type === 'virtio'))) {
    out.push(el('controller', { type: 'virtio-serial', index: '0' }));
  }
  const graphics = devices?.children.find((c) => c.name === 'graphics');
  if (graphics) out.push(el('video', {}, [el('model', { type: 'cirrus', vram: '16384', heads: '1', primary: 'yes' })]));
  out.push(el('audio', { id: '1', type: graphics?.attrs.type === 'spice' ? 'spice' : 'none' }));
  return out;
}

/** `devices/controller[type=usb]`, `devices/input[type=tablet]`, `devices/video`: a readable name for a device. */
function deviceName(f: Frag): string {
  const target = f.children.find((c) => c.name === 'target');
  const id = target?.attrs.dev ?? target?.attrs.name ?? f.children.find((c) => c.name === 'mac')?.attrs.address
    ?? (f.attrs.type !== undefined ? `type=${f.attrs.type}` : f.attrs.model !== undefined ? `model=${f.attrs.model}` : undefined);
  return `devices/${f.name}${id !== undefined ? `[${id}]` : ''}`;
}

/** Multiset difference of canonical forms: what is only in `a`, what is only in `b`. */
function multisetDiff(a: Frag[], b: Frag[]): { onlyA: Frag[]; onlyB: Frag[] } {
  const left = new Map<string, Frag[]>();
  for (const f of a) {
    const k = canonicalFragment(f);
    left.set(k, [...(left.get(k) ?? []), f]);
  }
  const onlyB: Frag[] = [];
  for (const f of b) {
    const k = canonicalFragment(f);
    const l = left.get(k);
    if (l && l.length > 0) l.pop();
    else onlyB.push(f);
  }
  return { onlyA: [...left.values()].flat(), onlyB };
}

/** Pairs what was dropped and added under the same name into one `rewritten` line. */
function pairUp(dropped: Frag[], added: Frag[], name: (f: Frag) => string, out: AdoptDifference[]): void {
  const rest = [...added];
  for (const d of dropped) {
    const n = name(d);
    const i = rest.findIndex((x) => name(x) === n);
    if (i >= 0) {
      out.push({ path: n, change: 'rewritten by adoption', before: canonicalFragment(d), after: canonicalFragment(rest[i]!) });
      rest.splice(i, 1);
    } else out.push({ path: n, change: 'dropped by adoption', before: canonicalFragment(d) });
  }
  for (const a of rest) out.push({ path: name(a), change: 'added by adoption', after: canonicalFragment(a) });
}

/** The `pc` machine type libvirt expands (`pc` → `pc-i440fx-7.2`), or the type as it is. */
function machineFamily(m: string | undefined): string {
  if (m === undefined || m === 'pc' || /^pc-i440fx-/.test(m)) return 'pc';
  if (m === 'q35' || /^pc-q35-/.test(m)) return 'q35';
  return m;
}

/**
 * The differences of the host's definition (`currentXml`) from the one virtform would define
 * (`builtXml`, from `buildDomainXml`), after libvirt's normalization; [] when adopting would
 * change nothing in the definition but the owner marker.
 */
export function domainAdoptionDifferences(currentXml: string, builtXml: string, explained: { disksOrNics: boolean }): AdoptDifference[] {
  const cur = strip(frag(currentXml));
  const want = strip(frag(builtXml));
  const out: AdoptDifference[] = [];
  const top = (f: Frag, name: string): Frag[] => f.children.filter((c) => c.name === name);

  // <domain type>: kept (an existing domain keeps its type), never a difference of adoption.
  // metadata: everything but virtform's owner marker is dropped.
  for (const m of top(cur, 'metadata')) {
    for (const c of m.children) {
      const ns = Object.entries(c.attrs).find(([k]) => k === 'xmlns' || k.startsWith('xmlns:'))?.[1];
      if (ns === OWNER_NS) continue;
      out.push({ path: `metadata/${c.name}`, change: 'dropped by adoption', before: canonicalFragment(c) });
    }
  }
  // <os>: the machine type (libvirt expands `pc`), and the children spec.boot does not cover (boot dev, bootmenu, smbios…).
  const os = (f: Frag): Frag | undefined => top(f, 'os')[0];
  const curOs = os(cur);
  const wantOs = os(want);
  const curType = curOs?.children.find((c) => c.name === 'type');
  const wantType = wantOs?.children.find((c) => c.name === 'type');
  if (machineFamily(curType?.attrs.machine) !== machineFamily(wantType?.attrs.machine) || (curType?.attrs.arch ?? 'x86_64') !== (wantType?.attrs.arch ?? 'x86_64')) {
    out.push({
      path: 'os/type', change: 'rewritten by adoption',
      before: curType ? canonicalFragment(curType) : undefined, after: wantType ? canonicalFragment(wantType) : undefined,
    });
  }
  {
    const wantOsChildren = (wantOs?.children ?? []).filter((c) => !OS_FIELD_LEVEL.has(c.name));
    // Without a boot order on any device, libvirt boots from the first disk: it writes <boot dev='hd'/>.
    const devices = want.children.find((c) => c.name === 'devices')?.children ?? [];
    if (!wantOsChildren.some((c) => c.name === 'boot') && !devices.some((d) => d.children.some((c) => c.name === 'boot'))) {
      wantOsChildren.push({ name: 'boot', attrs: { dev: 'hd' }, children: [], text: '' });
    }
    const { onlyA, onlyB } = multisetDiff((curOs?.children ?? []).filter((c) => !OS_FIELD_LEVEL.has(c.name)), wantOsChildren);
    pairUp(onlyA, onlyB, (f) => `os/${f.name}`, out);
  }
  // <cpu>: mode and model are field-level; its other children (features, topology, numa…) are not.
  {
    const children = (f: Frag): Frag[] => (top(f, 'cpu')[0]?.children ?? []).filter((c) => c.name !== 'model');
    const { onlyA, onlyB } = multisetDiff(children(cur), children(want));
    pairUp(onlyA, onlyB, (f) => `cpu/${f.name}`, out);
  }
  // Other top-level elements (features, clock, on_*, pm, memoryBacking, …), with libvirt's default clock.
  {
    const others = (f: Frag): Frag[] => f.children.filter((c) => !FIELD_LEVEL.has(c.name));
    const wanted = others(want);
    if (!wanted.some((c) => c.name === 'clock')) wanted.push({ name: 'clock', attrs: { offset: 'utc' }, children: [], text: '' });
    const { onlyA, onlyB } = multisetDiff(others(cur), wanted);
    pairUp(onlyA, onlyB, (f) => f.name, out);
  }
  // Devices: multisets of canonical fragments (no addresses), with what libvirt adds on its own.
  {
    const devicesOf = (f: Frag): Frag[] => (top(f, 'devices')[0]?.children ?? [])
      .filter((c) => c.name !== 'emulator' && !(explained.disksOrNics && DISK_NIC.has(c.name)))
      // A graphics device is field-level (type, listen); a second one is not.
      .map(normalizeDevice);
    const curDevices = devicesOf(cur);
    const wantDevices = [...devicesOf(want), ...libvirtDefaults(want)];
    // Graphics: the first of each side is field-level (spec.graphics); compared here only when both have one.
    const { onlyA, onlyB } = multisetDiff(curDevices, wantDevices);
    pairUp(onlyA, onlyB, deviceName, out);
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}
