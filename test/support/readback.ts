/**
 * The read-back oracle (issue #12): after an apply that should have converged, read what libvirt,
 * the volume files and the host's links ACTUALLY are and compare them field by field with the
 * manifests. Any difference is a failure of virtform, whatever its own observe/diff believes.
 *
 * Independent of virtform's reconcile and libvirt code on the READ side: the host is read with
 * `virsh` (one process, every command batched), `qemu-img info --output=json`, `stat` and
 * `ip -j link show`, and parsed here with fast-xml-parser. Only the EXPECTED side uses the project:
 * the manifest loader (src/manifest) and buildDesired (normalized sizes, disk targets, defaults).
 *
 * Checked per kind:
 * - VirtualMachine: exists, vcpus, memory and currentMemory (KiB), description, cpu mode/model,
 *   graphics type/listen, the guest agent channel, state, autostart,
 *   disks (matched by target: source file, bus, boot order, driver type), NICs in order (network,
 *   model, MAC == declared MAC; an undeclared MAC must stay the same between two readbacks of the
 *   same domain UUID: pass the previous snapshot), owner marker (kind, name, spec-hash); for a
 *   running VM every tap of a NIC on a declared network is enslaved to that network's bridge.
 * - Network: exists, forward mode (isolated = no <forward>), bridge (when declared), IPv4
 *   address/prefix, DHCP range, DHCP hosts (as a set), owner marker, active, autostart; for an
 *   active network the same config fields of the LIVE definition too (what dnsmasq really serves).
 * - StoragePool: exists, type dir, target path, active, autostart (pool XML has no marker).
 * - Volume: libvirt's volume (path, format, capacity, backing path) and the file itself: exists
 *   at `<pool path>/<name>.qcow2|.img`, qemu-img format, virtual size, backing file == the declared
 *   backing volume's path, the backing file exists and is that volume's current file (same
 *   inode), was not born after the clone, and did not change under an unchanged clone since the
 *   previous snapshot (a base replaced without its clones).
 *
 * Known bugs (`KNOWN_BUGS`) are differences that today's code is known to produce: they are
 * printed, not thrown, until the lead removes the entry with the fix.
 * `VIRTFORM_READBACK_STRICT=1` throws on them too; `VIRTFORM_READBACK_TIMING=1` logs each readback's time.
 */
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { promisify } from 'node:util';
import { XMLParser } from 'fast-xml-parser';
import { loadManifests, type DesiredState } from '../../src/manifest/index.js';
import { buildDesired, type Desired, type DesiredNetwork, type DesiredPool, type DesiredVm, type DesiredVolume } from '../../src/reconcile/desired.js';

const run = promisify(execFile);

/** virtform's owner-marker namespace (src/libvirt/xml/marker.ts OWNER_NS; a unit test keeps them equal). */
export const OWNER_NS = 'https://virtform.dev/xmlns/owner/v1';

export interface Difference {
  /** `Kind/name` */
  resource: string;
  field: string;
  expected: string;
  actual: string;
}

/** What a readback remembers for the next one (plain JSON). */
export interface Snapshot {
  /** `vm|domain uuid|nic index|network` -> MAC, for NICs without a declared MAC. */
  macs: Record<string, string>;
  /** volume path -> inodes of the clone and of its backing file. */
  /** `born`: the clone file's birth time (a file recreated at once can reuse the freed inode number). */
  clones: Record<string, { ino: number; born?: number; backingIno: number }>;
  /** `vm|domain uuid|disk file` -> target: a disk keeps its target while it stays attached. */
  targets?: Record<string, string>;
}

export interface FileFacts {
  ino: number;
  dev: number;
  /** 0 when the filesystem does not report a birth time. */
  birthtimeMs: number;
}

/** Raw outputs read from the host, keyed by object name / path. */
export interface HostFacts {
  domains: Record<string, { xml: string; info: string; iflist: string }>;
  networks: Record<string, { xml: string; liveXml: string; info: string }>;
  pools: Record<string, { xml: string; info: string }>;
  /** `pool/volName` -> vol-dumpxml output ('' when libvirt has no such volume). */
  volumes: Record<string, string>;
  /** path -> stat of the file (absent when missing) and `qemu-img info --output=json` text. */
  files: Record<string, { stat?: FileFacts; qemuImg?: string }>;
  /** `ip -j link show` output. */
  links: string;
}

/** The expected side: manifests as loaded plus virtform's normalized desired state. */
export interface Expected {
  manifests: DesiredState;
  desired: Desired;
}

// ---------------------------------------------------------------------------------------------
// Known bugs: differences today's code produces. Remove an entry when its fix lands.
// ---------------------------------------------------------------------------------------------

export interface KnownBug {
  id: string;
  what: string;
  matches: (d: Difference) => boolean;
}

export const KNOWN_BUGS: KnownBug[] = [
  // Empty: issue #12 items 1, 3, 5 and 7 and the stale network marker are fixed; a difference
  // the oracle finds fails the test. Add an entry here only with the bug it stands for.
];

// ---------------------------------------------------------------------------------------------
// Small XML reading helpers (every element is an array, text in '#text', attributes '@_x').
// ---------------------------------------------------------------------------------------------

type XNode = Record<string, unknown>;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  parseTagValue: false,
  parseAttributeValue: false,
  alwaysCreateTextNode: true,
  trimValues: true,
  isArray: (_name, _jpath, _leaf, isAttribute) => !isAttribute,
});

function parseDoc(xml: string, root: string): XNode | undefined {
  if (!xml.trim()) return undefined;
  const doc = parser.parse(xml) as XNode;
  const r = doc[root];
  return Array.isArray(r) ? (r[0] as XNode) : undefined;
}
const kids = (n: XNode | undefined, tag: string): XNode[] => (n && Array.isArray(n[tag]) ? (n[tag] as XNode[]) : []);
const first = (n: XNode | undefined, tag: string): XNode | undefined => kids(n, tag)[0];
const at = (n: XNode | undefined, name: string): string | undefined => (n ? (n[`@_${name}`] as string | undefined) : undefined);
const txt = (n: XNode | undefined): string | undefined => (n ? String(n['#text'] ?? '') : undefined);

/** Text content as XML escapes it (libvirt writes these five). */
function decodeXmlText(s: string): string {
  return s.replace(/&(lt|gt|quot|apos|amp);/g, (_, e: string) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[e]!);
}

const UNITS: Record<string, number> = {
  b: 1, bytes: 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tib: 1024 ** 4,
  kb: 1000, mb: 1000 ** 2, gb: 1000 ** 3, tb: 1000 ** 4,
};
/** A libvirt scaled integer (`<memory unit='KiB'>`, `<capacity unit='bytes'>`) in bytes. */
function scaled(n: XNode | undefined, defaultUnit: string): number | undefined {
  if (!n) return undefined;
  const unit = (at(n, 'unit') ?? defaultUnit).toLowerCase();
  const mult = UNITS[unit];
  if (mult === undefined) throw new Error(`readback: unknown unit ${unit}`);
  return Number(txt(n)) * mult;
}

/** `Key:   value` lines of dominfo / net-info / pool-info. */
export function parseInfo(out: string): Record<string, string> {
  const r: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line.trim());
    if (m) r[m[1]!.trim()] = m[2]!.trim();
  }
  return r;
}

function ownerMarker(root: XNode): { kind?: string; name?: string; specHash?: string } | undefined {
  for (const md of kids(root, 'metadata')) {
    for (const [tag, nodes] of Object.entries(md)) {
      if (!Array.isArray(nodes) || !(tag === 'owner' || tag.endsWith(':owner'))) continue;
      const prefix = tag.includes(':') ? tag.slice(0, tag.indexOf(':')) : '';
      const decl = prefix ? `xmlns:${prefix}` : 'xmlns';
      for (const node of nodes as XNode[]) {
        const ns = at(node, decl) ?? at(md, decl) ?? at(root, decl);
        if (ns === OWNER_NS) return { kind: at(node, 'kind'), name: at(node, 'name'), specHash: at(node, 'spec-hash') };
      }
    }
  }
  return undefined;
}

const show = (v: unknown): string => (v === undefined ? '(none)' : typeof v === 'string' ? v : JSON.stringify(v));

class Diffs {
  readonly list: Difference[] = [];
  constructor(private readonly resource: string) {}
  eq(field: string, expected: unknown, actual: unknown): void {
    const e = show(expected);
    const a = show(actual);
    if (e !== a) this.list.push({ resource: this.resource, field, expected: e, actual: a });
  }
  add(field: string, expected: string, actual: string): void {
    this.list.push({ resource: this.resource, field, expected, actual });
  }
}

// ---------------------------------------------------------------------------------------------
// Expected values computed from the manifests
// ---------------------------------------------------------------------------------------------

/** Where a volume's file must be: `<pool path>/<name>.qcow2|.img` (from the manifests, not from virtform). */
function volumePaths(m: DesiredState): Map<string, string> {
  const pools = new Map(m.pools.map((p) => [p.metadata.name, posix.normalize(p.spec.path)]));
  return new Map(m.volumes.map((v) => {
    const ext = (v.spec.format ?? 'qcow2') === 'raw' ? 'img' : 'qcow2';
    return [v.metadata.name, posix.join(pools.get(v.spec.pool) ?? `/nonexistent/${v.spec.pool}`, `${v.metadata.name}.${ext}`)];
  }));
}

const macKey = (vm: string, uuid: string, i: number, network: string): string => `${vm}|${uuid}|${i}|${network}`;

// ---------------------------------------------------------------------------------------------
// Comparison (pure: canned facts in, differences out)
// ---------------------------------------------------------------------------------------------

export function compareReadback(exp: Expected, facts: HostFacts, prev?: Snapshot): { differences: Difference[]; snapshot: Snapshot } {
  const out: Difference[] = [];
  const snapshot: Snapshot = { macs: {}, clones: {} };
  const paths = volumePaths(exp.manifests);
  const links = parseLinks(facts.links);
  const bridges = new Map<string, string>();
  for (const r of exp.desired.resources) {
    if (r.kind === 'Network') {
      const br = parseInfo(facts.networks[r.name]?.info ?? '').Bridge;
      if (br) bridges.set(r.name, br);
    }
  }
  for (const r of exp.desired.resources) {
    const d = new Diffs(`${r.kind}/${r.name}`);
    if (r.kind === 'StoragePool') comparePool(r, facts, d);
    else if (r.kind === 'Network') compareNetwork(r, facts, d);
    else if (r.kind === 'Volume') compareVolume(r, facts, paths, d, snapshot, prev);
    else if (r.kind === 'VirtualMachine') compareVm(r, facts, paths, links, bridges, d, snapshot, prev);
    out.push(...d.list);
  }
  return { differences: out, snapshot };
}

function comparePool(r: DesiredPool, facts: HostFacts, d: Diffs): void {
  const f = facts.pools[r.name];
  const root = parseDoc(f?.xml ?? '', 'pool');
  if (!root) return d.add('exists', 'yes', 'no');
  const info = parseInfo(f!.info);
  d.eq('type', 'dir', at(root, 'type'));
  d.eq('target path', posix.normalize(r.config.path), txt(first(first(root, 'target'), 'path')));
  d.eq('active', 'running', info.State);
  d.eq('autostart', r.autostart ? 'yes' : 'no', info.Autostart);
}

interface NetView {
  mode: string;
  bridge?: string;
  ip?: string;
  range?: string;
  hosts: string;
}
function netView(root: XNode): NetView {
  const fwd = first(root, 'forward');
  const mode = !fwd ? 'isolated' : (at(fwd, 'mode') ?? 'nat');
  const ips = kids(root, 'ip').filter((ip) => (at(ip, 'family') ?? (at(ip, 'address')?.includes(':') ? 'ipv6' : 'ipv4')) === 'ipv4');
  const ip = ips[0];
  let ipText: string | undefined;
  if (ip) {
    let prefix = at(ip, 'prefix');
    const mask = at(ip, 'netmask');
    if (prefix === undefined && mask !== undefined) {
      prefix = String(mask.split('.').reduce((n, o) => n + Number(o).toString(2).replace(/0/g, '').length, 0));
    }
    ipText = `${at(ip, 'address')}/${prefix}`;
    if (ips.length > 1) ipText += ` (+${ips.length - 1} more)`;
  }
  const dhcp = first(ip, 'dhcp');
  const ranges = kids(dhcp, 'range').map((g) => `${at(g, 'start')}-${at(g, 'end')}`);
  const hosts = kids(dhcp, 'host').map((h) => hostText(at(h, 'mac') ?? '', at(h, 'ip') ?? '', at(h, 'name'))).sort();
  return { mode, bridge: at(first(root, 'bridge'), 'name'), ip: ipText, range: ranges.length ? ranges.join(', ') : undefined, hosts: hosts.join(', ') || '(none)' };
}
const hostText = (mac: string, ip: string, name?: string): string => `${mac.toLowerCase()}=${ip}${name ? `(${name})` : ''}`;

function compareNetwork(r: DesiredNetwork, facts: HostFacts, d: Diffs): void {
  const f = facts.networks[r.name];
  const root = parseDoc(f?.xml ?? '', 'network');
  if (!root) return d.add('exists', 'yes', 'no');
  const c = r.config;
  const want: NetView = {
    mode: c.mode,
    bridge: c.bridge,
    ip: c.ipv4 ? `${c.ipv4.address}/${c.ipv4.prefix}` : undefined,
    range: c.dhcpRange ? `${c.dhcpRange.start}-${c.dhcpRange.end}` : undefined,
    hosts: c.dhcpHosts.map((h) => hostText(h.mac, h.ip, h.name)).sort().join(', ') || '(none)',
  };
  const check = (view: NetView, label: string): void => {
    d.eq(`${label}forward mode`, want.mode, view.mode);
    if (want.mode === 'bridge') d.eq(`${label}bridge`, want.bridge, view.bridge);
    d.eq(`${label}ipv4`, want.ip, view.ip);
    d.eq(`${label}dhcp range`, want.range, view.range);
    d.eq(`${label}dhcp hosts`, want.hosts, view.hosts);
  };
  // The persistent definition carries the spec hash virtform applied last. The running network's
  // copy of the marker changes only when the network starts again (libvirt 9.0 has no call to set
  // a network's metadata live), so only its presence is checked there.
  const marker = (x: XNode, label: string, withHash: boolean): void => {
    const m = ownerMarker(x);
    const show = (k?: string, n?: string, h?: string): string => (withHash ? `${k}/${n} ${h}` : `${k}/${n}`);
    d.eq(`${label}owner marker`, show(r.kind, r.name, r.specHash), m ? show(m.kind, m.name, m.specHash) : undefined);
  };
  check(netView(root), '');
  marker(root, '', true);
  const info = parseInfo(f!.info);
  d.eq('active', 'yes', info.Active);
  d.eq('autostart', r.autostart ? 'yes' : 'no', info.Autostart);
  const live = parseDoc(f!.liveXml, 'network');
  if (info.Active === 'yes' && live) {
    check(netView(live), 'live ');
    marker(live, 'live ', false);
  }
}

interface QemuImgInfo {
  format?: string;
  'virtual-size'?: number;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
}

function compareVolume(r: DesiredVolume, facts: HostFacts, paths: Map<string, string>, d: Diffs, snap: Snapshot, prev?: Snapshot): void {
  const c = r.config;
  const path = paths.get(r.name)!;
  const backingPath = c.backingVolume ? paths.get(c.backingVolume) : undefined;
  // libvirt's view of the volume
  const vol = parseDoc(facts.volumes[`${c.pool}/${posix.basename(path)}`] ?? '', 'volume');
  let libvirtCapacity: string | undefined;
  if (!vol) d.add('libvirt volume', `${c.pool}/${posix.basename(path)}`, '(not listed)');
  else {
    const t = first(vol, 'target');
    d.eq('libvirt path', path, txt(first(t, 'path')));
    d.eq('libvirt format', c.format, at(first(t, 'format'), 'type'));
    // An imported image without a declared capacity has its own virtual size: libvirt and the
    // file (qemu-img, below) must then agree with each other.
    libvirtCapacity = String(scaled(first(vol, 'capacity'), 'bytes'));
    if (c.capacityBytes !== undefined) d.eq('libvirt capacity', String(c.capacityBytes), libvirtCapacity);
    d.eq('libvirt backing', backingPath, txt(first(first(vol, 'backingStore'), 'path')) || undefined);
  }
  // the file itself
  const file = facts.files[path];
  if (!file?.stat) return d.add('file', path, '(missing)');
  let info: QemuImgInfo = {};
  try {
    info = JSON.parse(file.qemuImg ?? '') as QemuImgInfo;
  } catch {
    return d.add('qemu-img info', 'readable', show(file.qemuImg?.slice(0, 200)));
  }
  d.eq('file format', c.format, info.format);
  d.eq('file virtual size', c.capacityBytes !== undefined ? String(c.capacityBytes) : libvirtCapacity, String(info['virtual-size']));
  const actualBacking = info['full-backing-filename'] ?? info['backing-filename'];
  d.eq('file backing', backingPath, actualBacking);
  if (!backingPath || !actualBacking) return;
  const b = facts.files[actualBacking]?.stat;
  const declared = facts.files[backingPath]?.stat;
  if (!b) return d.add('backing file exists', actualBacking, '(missing)');
  if (!declared) return d.add('declared backing file exists', backingPath, '(missing)');
  d.eq('backing file is the backing volume\'s file (dev:inode)', `${declared.dev}:${declared.ino}`, `${b.dev}:${b.ino}`);
  if (b.birthtimeMs > 0 && file.stat.birthtimeMs > 0 && b.birthtimeMs > file.stat.birthtimeMs) {
    d.add('backing file born before the clone', `backing born <= ${new Date(file.stat.birthtimeMs).toISOString()}`,
      `backing born ${new Date(b.birthtimeMs).toISOString()} (the base was recreated under this clone)`);
  }
  snap.clones[path] = { ino: file.stat.ino, born: file.stat.birthtimeMs, backingIno: b.ino };
  const was = prev?.clones[path];
  // The same clone file: same inode AND same birth time (a clone deleted and made again at once
  // often gets the freed inode number back).
  const sameClone = was !== undefined && was.ino === file.stat.ino && (was.born === undefined || was.born === file.stat.birthtimeMs);
  if (was && sameClone && was.backingIno !== b.ino) {
    d.add('backing file of an unchanged clone', `inode ${was.backingIno} (as at the previous readback)`,
      `inode ${b.ino} (base replaced, clone kept)`);
  }
}

interface Link { ifname: string; master?: string }
function parseLinks(json: string): Map<string, Link> {
  if (!json.trim()) return new Map();
  return new Map((JSON.parse(json) as Link[]).map((l) => [l.ifname, l]));
}

/** Rows of `virsh -q domiflist`: Interface Type Source Model MAC. */
function parseIfList(out: string): { iface: string; type: string; source: string; model: string; mac: string }[] {
  return out.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const [iface = '', type = '', source = '', model = '', mac = ''] = l.split(/\s+/);
    return { iface, type, source, model, mac };
  });
}

function compareVm(
  r: DesiredVm, facts: HostFacts, paths: Map<string, string>, links: Map<string, Link>, bridges: Map<string, string>,
  d: Diffs, snap: Snapshot, prev?: Snapshot,
): void {
  const f = facts.domains[r.name];
  const root = parseDoc(f?.xml ?? '', 'domain');
  if (!root) return d.add('exists', 'yes', 'no');
  const c = r.config;
  const info = parseInfo(f!.info);
  const uuid = txt(first(root, 'uuid')) ?? '';
  const vcpu = first(root, 'vcpu');
  // `<vcpu>` is the maximum (spec.maxVcpus, default vcpus), its `current` the vCPUs (issue 18: the
  // property test found the oracle ignoring maxVcpus/maxMemory).
  d.eq('vcpus', String(c.maxVcpus ?? c.vcpus), txt(vcpu));
  if (at(vcpu, 'current') !== undefined || c.maxVcpus !== undefined) d.eq('vcpus (current)', String(c.vcpus), at(vcpu, 'current') ?? txt(vcpu));
  const kib = (n: XNode | undefined): string | undefined => {
    const b = scaled(n, 'KiB');
    return b === undefined ? undefined : String(Math.ceil(b / 1024));
  };
  d.eq('memory KiB', String(c.maxMemoryKiB ?? c.memoryKiB), kib(first(root, 'memory')));
  d.eq('currentMemory KiB', String(c.memoryKiB), kib(first(root, 'currentMemory')));
  // Read from the raw XML: the parser trims text, and leading or trailing blanks are part of it.
  const rawDescription = /<description>([\s\S]*?)<\/description>/.exec(f!.xml)?.[1];
  d.eq('description', c.description || undefined, rawDescription === undefined ? undefined : decodeXmlText(rawDescription) || undefined);
  d.eq('state', r.state === 'running' ? 'running' : 'shut off', info.State);
  d.eq('autostart', r.autostart ? 'enable' : 'disable', info.Autostart);
  const m = ownerMarker(root);
  d.eq('owner marker', `${r.kind}/${r.name} ${r.specHash}`, m ? `${m.kind}/${m.name} ${m.specHash}` : undefined);

  const devices = first(root, 'devices');
  // cpu: the declared mode (and model of custom); undeclared: none, or libvirt's default custom qemu64.
  const cpu = first(root, 'cpu');
  const cpuText = cpu ? `${at(cpu, 'mode') ?? 'custom'}${(at(cpu, 'mode') ?? 'custom') === 'custom' ? ` ${txt(first(cpu, 'model'))?.trim() ?? ''}` : ''}` : undefined;
  if (c.cpu) d.eq('cpu', `${c.cpu.mode}${c.cpu.mode === 'custom' ? ` ${c.cpu.model}` : ''}`, cpuText);
  else if (cpuText !== undefined) d.eq('cpu (undeclared: libvirt default)', 'custom qemu64', cpuText);
  const graphics = kids(devices, 'graphics').map((g) => `${at(g, 'type')} ${at(g, 'listen') ?? at(first(g, 'listen'), 'address') ?? '(no listen)'}`);
  d.eq('graphics', c.graphics ? `${c.graphics.type} ${c.graphics.listen}` : '(none)', graphics.join(', ') || '(none)');
  const agent = kids(devices, 'channel').some((x) => at(first(x, 'target'), 'name') === 'org.qemu.guest_agent.0');
  d.eq('guest agent channel', c.guestAgent === false ? 'no' : 'yes', agent ? 'yes' : 'no');
  // Extra devices: per element name, as many as declared (their own allowlist; the implicit ones —
  // the serial port 0, the agent channel, the PS/2 inputs — are not extra), each with the declared
  // attributes of its element.
  const EXTRA = ['watchdog', 'rng', 'tpm', 'panic', 'sound', 'input', 'redirdev', 'smartcard', 'hub', 'vsock', 'serial', 'parallel', 'channel', 'filesystem', 'hostdev'];
  const extraHave = EXTRA.flatMap((name) => kids(devices, name).filter((x) => !(
    (name === 'input' && at(x, 'bus') === 'ps2') || (name === 'serial' && at(first(x, 'target'), 'port') === '0')
    || (name === 'channel' && at(first(x, 'target'), 'name') === 'org.qemu.guest_agent.0'))).map((x) => ({ name, x })));
  const extraWant = (c.extraDevices ?? []).map((xml) => {
    const doc = parser.parse(xml) as XNode;
    const name = Object.keys(doc)[0]!;
    return { name, x: (doc[name] as XNode[])[0]! };
  });
  d.eq('extra devices', extraWant.map((w) => w.name).sort().join(',') || '(none)', extraHave.map((h) => h.name).sort().join(',') || '(none)');
  for (const w of extraWant) {
    const attrs = Object.keys(w.x).filter((k) => k.startsWith('@_'));
    const found = extraHave.some((h) => h.name === w.name && attrs.every((k) => h.x[k] === w.x[k]));
    d.eq(`extra device <${w.name}> ${attrs.map((k) => `${k.slice(2)}=${String(w.x[k])}`).join(' ')}`, 'present', found ? 'present' : 'missing');
  }
  // Disks by their file. Targets are assigned once and kept (issue 24: removing a disk renames no
  // other): a disk the previous readback saw in this domain keeps its target while its bus stays; in a domain seen for
  // the first time the targets are positional per bus (buildDesired's); a disk added to a known
  // domain takes a free target of its bus (checked: the family, and no target twice).
  const disks = kids(devices, 'disk').filter((x) => (at(x, 'device') ?? 'disk') === 'disk');
  const byPath = new Map(disks.map((x) => [at(first(x, 'source'), 'file') ?? '', x]));
  const targetOf = (x: XNode): string => at(first(x, 'target'), 'dev') ?? '';
  d.eq('disk files', c.disks.map((x) => paths.get(x.volume) ?? x.volume).sort().join(',') || '(none)', [...byPath.keys()].sort().join(',') || '(none)');
  d.eq('disk targets used once', String(disks.length), String(new Set(disks.map(targetOf)).size));
  const knownDomain = prev !== undefined && Object.keys(prev.targets ?? {}).some((k) => k.startsWith(`${r.name}|${uuid}|`));
  const family = (bus: string): string => (bus === 'virtio' ? 'vd' : bus === 'ide' ? 'hd' : 'sd');
  for (const want of c.disks) {
    const path = paths.get(want.volume);
    const x = path === undefined ? undefined : byPath.get(path);
    if (!x) continue;
    const target = targetOf(x);
    const key = `${r.name}|${uuid}|${path}`;
    const was = prev?.targets?.[key];
    const p = `disk ${want.volume} `;
    if (was !== undefined && was.slice(0, 2) === family(want.bus)) d.eq(`${p}target (kept since the previous readback)`, was, target);
    else if (!knownDomain) d.eq(`${p}target (positional in a new domain)`, want.target, target);
    else d.eq(`${p}target's bus family`, family(want.bus), target.slice(0, 2));
    (snap.targets ??= {})[key] = target;
    d.eq(`${p}bus`, want.bus, at(first(x, 'target'), 'bus'));
    d.eq(`${p}boot order`, want.bootOrder === undefined ? undefined : String(want.bootOrder), at(first(x, 'boot'), 'order'));
    d.eq(`${p}driver type`, want.format, at(first(x, 'driver'), 'type'));
  }

  // spec.boot: <os> as declared (kernel, initrd, cmdline; firmware='efi' for uefi).
  const os = first(root, 'os');
  d.eq('boot firmware', c.boot?.firmware === 'uefi' ? 'efi' : undefined, at(os, 'firmware'));
  d.eq('boot kernel', c.boot?.kernel, txt(first(os, 'kernel')) || undefined);
  d.eq('boot initrd', c.boot?.initrd, txt(first(os, 'initrd')) || undefined);
  d.eq('boot cmdline', c.boot?.cmdline, txt(first(os, 'cmdline')) || undefined);
  // spec.cloudInit: one read-only raw CD-ROM on the seed file, whose bytes are the desired seed, mode 0600.
  const cdroms = kids(devices, 'disk').filter((x) => at(x, 'device') === 'cdrom');
  const ci = c.cloudInit;
  d.eq('cdroms', ci ? `${ci.target}=${ci.path} (ide, readonly)` : '(none)',
    cdroms.map((x) => `${at(first(x, 'target'), 'dev')}=${at(first(x, 'source'), 'file')} (${at(first(x, 'target'), 'bus')}${first(x, 'readonly') !== undefined ? ', readonly' : ''})`).join(', ') || '(none)');
  if (ci) {
    let bytes: Buffer | undefined;
    try {
      bytes = readFileSync(ci.path);
    } catch {
      bytes = undefined;
    }
    d.eq('seed file sha256', ci.seed, bytes ? `sha256:${createHash('sha256').update(bytes).digest('hex')}` : '(missing)');
    if (bytes) d.eq('seed file mode', '600', (statSync(ci.path).mode & 0o777).toString(8));
  }

  const nics = kids(devices, 'interface');
  d.eq('nic count', String(c.nics.length), String(nics.length));
  c.nics.forEach((want, i) => {
    const x = nics[i];
    if (!x) return;
    const p = `nic[${i}] `;
    d.eq(`${p}type`, 'network', at(x, 'type'));
    d.eq(`${p}network`, want.network, at(first(x, 'source'), 'network'));
    d.eq(`${p}model`, want.model, at(first(x, 'model'), 'type'));
    const mac = at(first(x, 'mac'), 'address')?.toLowerCase();
    if (want.mac) d.eq(`${p}mac`, want.mac.toLowerCase(), mac);
    else {
      const key = macKey(r.name, uuid, i, want.network);
      if (mac) snap.macs[key] = mac;
      const was = prev?.macs[key];
      if (was !== undefined) d.eq(`${p}mac (undeclared: stable across readbacks)`, was, mac);
      else if (!mac) d.add(`${p}mac`, '(generated by libvirt)', '(none)');
    }
  });

  // Running: each tap of a NIC on a declared network must be a port of that network's bridge.
  if (info.State === 'running') {
    const declaredNets = new Set(c.nics.map((n) => n.network));
    for (const row of parseIfList(f!.iflist)) {
      if (row.type !== 'network' || !declaredNets.has(row.source)) continue;
      const br = bridges.get(row.source);
      const link = links.get(row.iface);
      d.eq(`tap ${row.iface} (${row.mac}) master`, br ?? `(bridge of ${row.source})`, link ? link.master : '(no such link)');
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reading the host
// ---------------------------------------------------------------------------------------------

const SAFE = /^(--)?[A-Za-z0-9][A-Za-z0-9._-]*$/;
function safe(name: string): string {
  if (!SAFE.test(name)) throw new Error(`readback: refusing to pass ${JSON.stringify(name)} to virsh (test names only)`);
  return name;
}

/** Run commands in ONE virsh process (`;`-separated); return each command's stdout ('' on failure). */
export async function virshBatch(uri: string, commands: string[][]): Promise<string[]> {
  if (commands.length === 0) return [];
  const tag = `@@VF${process.pid}@@`;
  const script = commands.map((c, i) => `echo ${tag}${i}@@; ${c.map(safe).join(' ')}`).join('; ') + `; echo ${tag}${commands.length}@@`;
  const { stdout } = await run('virsh', ['-q', '-c', uri, script], { maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' });
  const outs: string[] = new Array<string>(commands.length).fill('');
  const re = new RegExp(`${tag}(\\d+)@@\\n?`, 'g');
  const marks = [...stdout.matchAll(re)];
  for (let k = 0; k + 1 < marks.length; k++) {
    const i = Number(marks[k]![1]);
    if (i < commands.length) outs[i] = stdout.slice(marks[k]!.index! + marks[k]![0].length, marks[k + 1]!.index);
  }
  return outs;
}

async function fileFacts(path: string): Promise<FileFacts | undefined> {
  try {
    const s = await stat(path);
    return { ino: s.ino, dev: s.dev, birthtimeMs: s.birthtimeMs };
  } catch {
    return undefined;
  }
}

async function qemuImg(path: string): Promise<string> {
  try {
    return (await run('qemu-img', ['info', '-U', '--output=json', path], { encoding: 'utf8' })).stdout;
  } catch (e) {
    return `qemu-img failed: ${(e as Error).message}`;
  }
}

export async function loadExpected(dir: string): Promise<Expected> {
  const r = await loadManifests(dir);
  if (!r.ok) throw new Error(`readback: manifests in ${dir} are invalid:\n${r.errors.map((e) => `${e.file}:${e.line}:${e.col} ${e.message}`).join('\n')}`);
  return { manifests: r.desired, desired: buildDesired(r.desired) };
}

/** Read everything the comparison needs for these manifests: one virsh, one ip, stat/qemu-img per volume file. */
export async function readHost(exp: Expected, uri: string): Promise<HostFacts> {
  const cmds: string[][] = [];
  const slot: (() => void)[] = [];
  const facts: HostFacts = { domains: {}, networks: {}, pools: {}, volumes: {}, files: {}, links: '' };
  const outs: string[] = [];
  const add = (cmd: string[], put: (s: string) => void): void => {
    const i = cmds.push(cmd) - 1;
    slot.push(() => put(outs[i] ?? ''));
  };
  const paths = volumePaths(exp.manifests);
  for (const r of exp.desired.resources) {
    if (r.kind === 'VirtualMachine') {
      const e = (facts.domains[r.name] = { xml: '', info: '', iflist: '' });
      add(['dumpxml', '--inactive', r.name], (s) => (e.xml = s));
      add(['dominfo', r.name], (s) => (e.info = s));
      add(['domiflist', r.name], (s) => (e.iflist = s));
    } else if (r.kind === 'Network') {
      const e = (facts.networks[r.name] = { xml: '', liveXml: '', info: '' });
      add(['net-dumpxml', '--inactive', r.name], (s) => (e.xml = s));
      add(['net-dumpxml', r.name], (s) => (e.liveXml = s));
      add(['net-info', r.name], (s) => (e.info = s));
    } else if (r.kind === 'StoragePool') {
      const e = (facts.pools[r.name] = { xml: '', info: '' });
      add(['pool-dumpxml', '--inactive', r.name], (s) => (e.xml = s));
      add(['pool-info', r.name], (s) => (e.info = s));
    } else if (r.kind === 'Volume') {
      const key = `${r.config.pool}/${posix.basename(paths.get(r.name)!)}`;
      add(['vol-dumpxml', '--pool', r.config.pool, posix.basename(paths.get(r.name)!)], (s) => (facts.volumes[key] = s));
    }
  }
  const filePaths = [...paths.values()];
  const [virshOut, links, fileInfo] = await Promise.all([
    virshBatch(uri, cmds),
    run('ip', ['-j', 'link', 'show'], { encoding: 'utf8' }).then((x) => x.stdout),
    Promise.all(filePaths.map(async (p) => ({ p, stat: await fileFacts(p), qemuImg: undefined as string | undefined }))),
  ]);
  outs.push(...virshOut);
  for (const put of slot) put();
  facts.links = links;
  // qemu-img only for files that exist; backing files it names are stat'ed too (they may lie outside the manifests).
  await Promise.all(fileInfo.map(async (f) => {
    if (f.stat) f.qemuImg = await qemuImg(f.p);
    facts.files[f.p] = { stat: f.stat, qemuImg: f.qemuImg };
  }));
  const extra = new Set<string>();
  for (const f of Object.values(facts.files)) {
    try {
      const j = JSON.parse(f.qemuImg ?? '') as QemuImgInfo;
      const b = j['full-backing-filename'] ?? j['backing-filename'];
      if (b && !facts.files[b]) extra.add(b);
    } catch {
      // reported by the comparison
    }
  }
  await Promise.all([...extra].map(async (p) => (facts.files[p] = { stat: await fileFacts(p) })));
  return facts;
}

export interface ReadbackResult {
  differences: Difference[];
  /** The differences that are a listed known bug (not thrown unless VIRTFORM_READBACK_STRICT=1). */
  known: { bug: KnownBug; difference: Difference }[];
  snapshot: Snapshot;
  ms: number;
  /** ms spent loading the manifests, reading the host, comparing. */
  parts: { load: number; host: number; compare: number };
}

export async function readback(dir: string, uri: string, prev?: Snapshot): Promise<ReadbackResult> {
  const t0 = performance.now();
  const exp = await loadExpected(dir);
  const t1 = performance.now();
  const facts = await readHost(exp, uri);
  const t2 = performance.now();
  const { differences, snapshot } = compareReadback(exp, facts, prev);
  const t3 = performance.now();
  const known: ReadbackResult['known'] = [];
  for (const difference of differences) {
    const bug = KNOWN_BUGS.find((b) => b.matches(difference));
    if (bug) known.push({ bug, difference });
  }
  return { differences, known, snapshot, ms: t3 - t0, parts: { load: t1 - t0, host: t2 - t1, compare: t3 - t2 } };
}

/**
 * Combine an older snapshot with a newer one. `keep: 'last'`: the newer observation wins (compare
 * consecutive readbacks; entries of other manifest folders are kept). `keep: 'first'` (default):
 * the older observation wins: a MAC first seen
 * before a crash must still be there after the recovery (its key names the domain UUID, so a
 * recreated domain is a new key); a clone keeps its first-seen backing inode while it is the same file.
 */
export function mergeSnapshots(older: Snapshot | undefined, newer: Snapshot, keep: 'first' | 'last' = 'first'): Snapshot {
  if (!older) return newer;
  if (keep === 'last') return { macs: { ...older.macs, ...newer.macs }, clones: { ...older.clones, ...newer.clones }, targets: { ...older.targets, ...newer.targets } };
  const clones = { ...newer.clones };
  for (const [path, c] of Object.entries(older.clones)) {
    if (!clones[path] || clones[path]!.ino === c.ino) clones[path] = c;
  }
  return { macs: { ...newer.macs, ...older.macs }, clones, targets: { ...newer.targets, ...older.targets } };
}

export function formatDifferences(diffs: Difference[]): string {
  const rows = [['resource', 'field', 'expected', 'actual'], ...diffs.map((d) => [d.resource, d.field, d.expected, d.actual])];
  const w = [0, 1, 2, 3].map((c) => Math.min(60, Math.max(...rows.map((r) => r[c]!.length))));
  return rows.map((r, i) => {
    const line = r.map((v, c) => v.padEnd(w[c]!)).join(' | ');
    return i === 0 ? `${line}\n${w.map((n) => '-'.repeat(n)).join('-+-')}` : line;
  }).join('\n');
}

/** Per-process timings (ms) of every readback, for reports. */
export const readbackTimings: number[] = [];

/** The differences that fail a test (known bugs apart unless VIRTFORM_READBACK_STRICT=1); prints the known ones. */
export function failures(r: ReadbackResult, label: string): Difference[] {
  const strict = process.env.VIRTFORM_READBACK_STRICT === '1';
  if (r.known.length) {
    process.stderr.write(`[readback] ${label}: known bugs still present${strict ? ' (STRICT: failing)' : ''}:\n` +
      r.known.map((k) => `  ${k.bug.id} (${k.bug.what}): ${k.difference.resource} ${k.difference.field}: expected ${k.difference.expected}, actual ${k.difference.actual}`).join('\n') + '\n');
  }
  const knownSet = new Set(r.known.map((k) => k.difference));
  return strict ? r.differences : r.differences.filter((d) => !knownSet.has(d));
}

function note(r: ReadbackResult, label: string): void {
  readbackTimings.push(r.ms);
  if (process.env.VIRTFORM_READBACK_TIMING) {
    process.stderr.write(`[readback] ${label}: ${r.ms.toFixed(0)} ms (load ${r.parts.load.toFixed(0)}, host ${r.parts.host.toFixed(0)}, compare ${r.parts.compare.toFixed(1)})\n`);
  }
}

const failure = (dir: string, label: string, diffs: Difference[]): Error =>
  new Error(`readback${label ? ` (${label})` : ''}: the host differs from the manifests in ${dir}:\n${formatDifferences(diffs)}`);

/**
 * Read back and throw a readable table when the host differs from the manifests. Returns the
 * snapshot to pass to the next call (MAC stability, clone/base pairing).
 */
export async function expectReadbackMatches(dir: string, uri: string, prev?: Snapshot, label = ''): Promise<Snapshot> {
  const r = await readback(dir, uri, prev);
  note(r, label);
  const failing = failures(r, label);
  if (failing.length) throw failure(dir, label, failing);
  return r.snapshot;
}

/**
 * For an asynchronous controller (watch): read back until the host matches (every `intervalMs`),
 * throwing the last table of differences after `timeoutMs`.
 */
export async function waitForReadbackMatch(dir: string, uri: string, prev?: Snapshot, label = '', timeoutMs = 20_000, intervalMs = 250): Promise<Snapshot> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await readback(dir, uri, prev);
    note(r, label);
    const strict = process.env.VIRTFORM_READBACK_STRICT === '1';
    const knownSet = new Set(r.known.map((k) => k.difference));
    const failing = strict ? r.differences : r.differences.filter((x) => !knownSet.has(x));
    if (failing.length === 0) {
      failures(r, label); // print the known bugs once
      return r.snapshot;
    }
    if (Date.now() > deadline) throw failure(dir, `${label}, still after ${timeoutMs} ms`, failing);
    await new Promise((res) => setTimeout(res, intervalMs));
  }
}
