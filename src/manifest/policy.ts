/**
 * The host policy: which host paths and URL hosts manifests may point virtform at, and resource
 * limits. virtform usually runs as root and reads manifests from a repository; without a policy a
 * push could make it import `/etc/shadow` into a volume or create a pool in `/etc`. A manifest
 * outside the policy is invalid like any other manifest error (exit 2, file:line:col and field).
 *
 * The policy file: `--policy FILE`, else `/etc/virtform/policy.yaml` when it exists, else none (no
 * restriction). Its format is `schemas/policy.schema.json`; `configs/policy.example.yaml` shows it.
 *
 * Which manifest fields are checked is ONE table, {@link POLICY_FIELDS}: a new path or URL field
 * of a kind is one more row. A row whose path does not exist in a manifest, or holds no string
 * there, is skipped (so rows for fields other branches add are harmless before they land).
 *
 * VirtualMachine `spec.extraDevices` is checked apart (`extra-devices.ts`): its host paths are
 * inside XML, and it is deny by default, without a policy file too (`extraDevices` section,
 * `allowedRoots.extraDeviceSources`).
 */
import { existsSync, realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, posix, resolve } from 'node:path';
import { quote, type FieldPath, type ManifestError } from './errors.js';
import type { ImportRules, ResourceKind } from './model.js';
import { validatePolicyAgainstSchema } from './schema.js';
import { Reporter, specOf, type Entry } from './semantics.js';
import { ManifestSizeError, formatSize, parseSize } from './size.js';
import { docToJs, locate, parseYamlFile } from './yaml-source.js';
import type { PolicyAllowedRoots, PolicyExtraDevices, PolicyLimitSet, PolicyManifests, Size } from './types.generated.js';

/** Where the policy is read from when `--policy` is not given (only when the file exists). */
export const DEFAULT_POLICY_PATH = '/etc/virtform/policy.yaml';

/** Path categories: each names a list of allowed roots in the policy's `allowedRoots`. */
export type PathCategory = keyof PolicyAllowedRoots;
/** A field is checked either as a host path (against a root list) or as a URL (against `urlHosts`). */
export type PolicyCategory = PathCategory | 'urlHosts';

export interface PolicyField {
  kind: ResourceKind;
  /** Path into the document; `*` walks every item of a list. */
  path: readonly string[];
  category: PolicyCategory;
}

/**
 * Every manifest field the policy checks. Paths relative to the manifest file are resolved against
 * its folder (the loader has already made Volume `spec.source` absolute).
 */
export const POLICY_FIELDS: readonly PolicyField[] = [
  { kind: 'StoragePool', path: ['spec', 'path'], category: 'poolPaths' },
  { kind: 'Volume', path: ['spec', 'source'], category: 'imageSources' },
  { kind: 'Volume', path: ['spec', 'source', 'url'], category: 'urlHosts' },
  { kind: 'VirtualMachine', path: ['spec', 'cloudInit', 'userDataFile'], category: 'cloudInitFiles' },
  { kind: 'VirtualMachine', path: ['spec', 'boot', 'kernel'], category: 'bootFiles' },
  { kind: 'VirtualMachine', path: ['spec', 'boot', 'initrd'], category: 'bootFiles' },
];

interface Limits {
  vcpus?: number;
  memory?: number;
  disk?: number;
}

/** A loaded policy: roots as written and as real paths, URL hosts, limits in bytes. */
export interface Policy {
  file: string;
  roots: Partial<Record<PathCategory, { given: string; real: string }[]>>;
  urlHosts?: string[];
  limits: { host: Limits; vm: Limits };
  /** What spec.extraDevices may reach on the host (absent section: nothing; see extra-devices.ts). */
  extraDevices?: { hostElements: string[]; networkChardevs: boolean };
  /** `manifests.confineSymlinks`: a local manifest folder is a sandbox like a git checkout. */
  confineSymlinks?: boolean;
}

export type PolicyLoad = { ok: true; policy: Policy | undefined } | { ok: false; errors: ManifestError[] };

/** Real path of `p`; for a path that does not exist (yet), the real path of its deepest existing ancestor joined with the rest. */
export function realPathOf(p: string): string {
  const rest: string[] = [];
  let cur = posix.normalize(p);
  for (;;) {
    try {
      const real = realpathSync(cur);
      return rest.length ? join(real, ...rest.reverse()) : real;
    } catch { // safe-catch: this path does not exist (yet): resolve its parent and keep the rest
      const parent = dirname(cur);
      if (parent === cur) return posix.normalize(p);
      rest.push(basename(cur));
      cur = parent;
    }
  }
}

/** Whether `path` is `root` or lies below it (both real paths). */
export function within(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith('/') ? root : `${root}/`);
}

/**
 * Read the policy: `file` when given (it must exist), else {@link DEFAULT_POLICY_PATH} when it
 * exists, else none. Errors name the policy file, line, column and field (exit 2 for callers).
 */
export async function loadPolicy(file: string | undefined, defaultPath: string = DEFAULT_POLICY_PATH): Promise<PolicyLoad> {
  const path = file ?? (existsSync(defaultPath) ? defaultPath : undefined);
  if (path === undefined) return { ok: true, policy: undefined };
  const err = (message: string, line = 1, col = 1, field?: string): PolicyLoad =>
    ({ ok: false, errors: [{ file: path, line, col, kind: 'Policy', ...(field ? { field } : {}), message }] });
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return err(`cannot read policy file: ${code === 'ENOENT' ? 'it does not exist' : code ?? String(e)}`);
  }
  const parsed = parseYamlFile(path, bytes);
  if (parsed.errors.length > 0) return { ok: false, errors: parsed.errors.map((e) => ({ ...e, kind: 'Policy' })) };
  if (parsed.docs.length !== 1) return err(`policy file must hold exactly one YAML document, found ${parsed.docs.length}`);
  const sd = parsed.docs[0]!;
  const js = docToJs(sd);
  if (!js.ok) return { ok: false, errors: [js.error] };
  const data = js.value;
  const problems = validatePolicyAgainstSchema(data);
  const errors: ManifestError[] = [];
  const at = (p: FieldPath, message: string, key = false): void => {
    const pos = locate(sd, p, { key });
    errors.push({ file: path, line: pos.line, col: pos.col, kind: 'Policy', ...(p.length ? { field: p.join('.') } : {}), message });
  };
  for (const p of problems) {
    const pos = locate(sd, p.locatePath, { key: p.atKey });
    errors.push({ file: path, line: pos.line, col: pos.col, kind: 'Policy', ...(p.path.length ? { field: p.path.join('.') } : {}), message: p.message });
  }
  if (errors.length > 0) return { ok: false, errors };
  const doc = data as { allowedRoots?: PolicyAllowedRoots; urlHosts?: string[]; limits?: { host?: PolicyLimitSet; vm?: PolicyLimitSet }; extraDevices?: PolicyExtraDevices; manifests?: PolicyManifests };

  const roots: Policy['roots'] = {};
  for (const [category, list] of Object.entries(doc.allowedRoots ?? {}) as [PathCategory, string[]][]) {
    roots[category] = [];
    list.forEach((root, i) => {
      if (posix.normalize(root) !== root || root.endsWith('/') || root.split('/').includes('..')) {
        at(['allowedRoots', category, i], `root ${quote(root)} is not a normalized absolute path`);
        return;
      }
      roots[category]!.push({ given: root, real: realPathOf(root) });
    });
  }
  const limitsOf = (set: PolicyLimitSet | undefined, where: 'host' | 'vm'): Limits => {
    const out: Limits = {};
    if (!set) return out;
    if (set.vcpus !== undefined) out.vcpus = set.vcpus;
    for (const f of ['memory', 'disk'] as const) {
      const v: Size | undefined = set[f];
      if (v === undefined) continue;
      try {
        out[f] = parseSize(v);
      } catch (e) {
        if (!(e instanceof ManifestSizeError)) throw e;
        at(['limits', where, f], e.message);
      }
    }
    return out;
  };
  const limits = { host: limitsOf(doc.limits?.host, 'host'), vm: limitsOf(doc.limits?.vm, 'vm') };
  if (errors.length > 0) return { ok: false, errors };
  const extraDevices = { hostElements: [...(doc.extraDevices?.hostElements ?? [])], networkChardevs: doc.extraDevices?.networkChardevs ?? false };
  return {
    ok: true,
    policy: {
      file: path, roots, ...(doc.urlHosts ? { urlHosts: doc.urlHosts.map((h) => h.toLowerCase()) } : {}), limits, extraDevices,
      ...(doc.manifests?.confineSymlinks ? { confineSymlinks: true } : {}),
    },
  };
}

/** Values at `path` (with `*` over list items), with their concrete field paths. */
function valuesAt(node: unknown, path: readonly string[], prefix: FieldPath = []): { value: unknown; path: FieldPath }[] {
  if (path.length === 0) return [{ value: node, path: prefix }];
  const [seg, ...rest] = path;
  if (seg === '*') {
    return Array.isArray(node) ? node.flatMap((item, i) => valuesAt(item, rest, [...prefix, i])) : [];
  }
  if (!node || typeof node !== 'object' || Array.isArray(node)) return [];
  const obj = node as Record<string, unknown>;
  return seg! in obj ? valuesAt(obj[seg!], rest, [...prefix, seg!]) : [];
}

/** Whether `host` is one of `allowed` (`*.example.org`: any name below it). */
export function hostAllowed(host: string, allowed: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return allowed.some((a) => (a.startsWith('*.') ? h.endsWith(a.slice(1)) && h.length > a.length - 1 : h === a));
}

const CATEGORY_WORDS: Record<PolicyCategory, string> = {
  poolPaths: 'pool path', imageSources: 'image source', cloudInitFiles: 'cloud-init file', bootFiles: 'boot file', urlHosts: 'URL host',
  extraDeviceSources: 'extra device path',
};

/** Check validated manifests against the policy; errors point at the offending field. */
export function checkPolicy(entries: readonly Entry[], policy: Policy): ManifestError[] {
  const r = new Reporter();
  const from = `(policy ${policy.file})`;
  for (const e of entries) {
    if (!e.valid) continue;
    for (const f of POLICY_FIELDS) {
      if (f.kind !== e.kind) continue;
      for (const { value, path } of valuesAt(e.data, f.path)) {
        if (typeof value !== 'string') continue;
        if (f.category === 'urlHosts') {
          if (!policy.urlHosts) continue;
          let host: string;
          try {
            host = new URL(value).hostname;
          } catch { // safe-catch: the kind's own validation reports a malformed URL
            continue; // the kind's own validation reports a malformed URL
          }
          if (!hostAllowed(host, policy.urlHosts)) {
            r.at(e, path, `URL host ${quote(host)} is not allowed: urlHosts allows ${policy.urlHosts.length ? policy.urlHosts.join(', ') : 'none'} ${from}`);
          }
          continue;
        }
        const roots = policy.roots[f.category];
        if (!roots) continue;
        const abs = isAbsolute(value) ? posix.normalize(value) : resolve(dirname(resolve(e.sd.file)), value);
        const real = realPathOf(abs);
        if (roots.some((root) => within(real, root.real))) continue;
        const via = real !== abs ? ` (resolves to ${quote(real, 512)})` : '';
        const list = roots.length ? roots.map((x) => x.given).join(', ') : 'none';
        r.at(e, path, `${CATEGORY_WORDS[f.category]} ${quote(abs, 512)}${via} is outside the allowed roots: allowedRoots.${f.category} allows ${list} ${from}`);
      }
    }
  }
  return r.errors;
}

function sizeOf(v: unknown): number | undefined {
  if (typeof v !== 'string' && typeof v !== 'number') return undefined;
  try {
    return parseSize(v);
  } catch { // safe-catch: not a size: the schema and semantic checks report it
    return undefined;
  }
}

/** The virtual size of a URL image in the image cache, when it is there (plan time); undefined when not cached. */
export type CachedImageSize = (sha256: string) => Promise<number | undefined>;

/**
 * The policy's limits, over the size each volume will have: its `capacity`, else its image's
 * virtual size (a local source: read at load; a URL image: from the image cache when it is there).
 * A URL image of unknown size gets {@link ImportRules.maxVirtualSize}: what the limits leave it,
 * checked before its upload. Runs after the semantic checks (they read local image headers).
 */
export async function checkPolicyLimits(entries: readonly Entry[], policy: Policy, cachedSize?: CachedImageSize): Promise<ManifestError[]> {
  const r = new Reporter();
  const from = `(policy ${policy.file})`;
  checkLimits(entries, policy, r, from);
  const { host, vm } = policy.limits;
  const sizes = new Map<string, number>();
  const unknown: Entry[] = [];
  const volumes = entries.filter((e) => e.valid && e.kind === 'Volume');
  for (const e of volumes) {
    const spec = specOf(e, 'Volume');
    let size = sizeOf(spec.capacity);
    if (size === undefined && e.image) size = e.image.virtualSize;
    if (size === undefined && typeof spec.source === 'object' && cachedSize) size = await cachedSize(spec.source.sha256.toLowerCase()).catch(() => undefined); // safe-catch: an unreadable cache entry is an unknown size, checked again before the upload
    if (size === undefined && typeof spec.source === 'object') unknown.push(e);
    if (e.name) sizes.set(e.name, size ?? 0);
  }
  const sizeField = (e: Entry): FieldPath => (specOf(e, 'Volume').capacity !== undefined ? ['spec', 'capacity'] : ['spec', 'source']);
  let disk = 0;
  for (const e of volumes) {
    const before = disk;
    disk += e.name ? sizes.get(e.name) ?? 0 : 0;
    if (host.disk !== undefined && disk > host.disk && before <= host.disk) {
      const mine = specOf(e, 'Volume').capacity !== undefined ? '' : ` (this one: ${formatSize(disk - before)}, the image's virtual size)`;
      r.at(e, sizeField(e), `total volume capacity ${formatSize(disk)}${mine} exceeds the host limit limits.host.disk ${formatSize(host.disk)} ${from}`);
    }
  }
  const vms = entries.filter((e) => e.valid && e.kind === 'VirtualMachine');
  for (const e of vms) {
    if (vm.disk === undefined) break;
    const disks = specOf(e, 'VirtualMachine').disks ?? [];
    const total = disks.reduce((n, d) => n + (sizes.get(d.volume) ?? 0), 0);
    if (total > vm.disk) r.at(e, ['spec', 'disks'], `attached volumes total ${formatSize(total)}, more than the per-VM limit limits.vm.disk ${formatSize(vm.disk)} ${from}`);
  }
  // What the limits leave an image whose size is known only once it is downloaded.
  for (const e of unknown) {
    const rules: ImportRules = e.importRules ?? {};
    let max: { bytes: number; why: string } | undefined;
    const tighten = (bytes: number, why: string): void => {
      if (!max || bytes < max.bytes) max = { bytes: Math.max(0, bytes), why };
    };
    if (host.disk !== undefined) tighten(host.disk - disk, `limits.host.disk ${formatSize(host.disk)} (other volumes: ${formatSize(disk)}) ${from}`);
    if (vm.disk !== undefined) {
      for (const v of vms) {
        const disks = specOf(v, 'VirtualMachine').disks ?? [];
        if (!disks.some((d) => d.volume === e.name)) continue;
        const others = disks.reduce((n, d) => n + (d.volume === e.name ? 0 : sizes.get(d.volume) ?? 0), 0);
        tighten(vm.disk - others, `limits.vm.disk ${formatSize(vm.disk)} of VirtualMachine/${v.name ?? '?'} (its other disks: ${formatSize(others)}) ${from}`);
      }
    }
    if (max) e.importRules = { ...rules, maxVirtualSize: max };
  }
  return r.errors;
}

function checkLimits(entries: readonly Entry[], policy: Policy, r: Reporter, from: string): void {
  const { host, vm } = policy.limits;
  let vcpus = 0;
  let memory = 0;
  for (const e of entries) {
    if (!e.valid || e.kind !== 'VirtualMachine') continue;
    const spec = specOf(e, 'VirtualMachine');
    const cpus = Math.max(spec.vcpus, spec.maxVcpus ?? 0);
    const mem = Math.max(sizeOf(spec.memory) ?? 0, sizeOf(spec.maxMemory) ?? 0);
    const cpuField: FieldPath = ['spec', spec.maxVcpus !== undefined && spec.maxVcpus > spec.vcpus ? 'maxVcpus' : 'vcpus'];
    const memField: FieldPath = ['spec', spec.maxMemory !== undefined && (sizeOf(spec.maxMemory) ?? 0) > (sizeOf(spec.memory) ?? 0) ? 'maxMemory' : 'memory'];
    if (vm.vcpus !== undefined && cpus > vm.vcpus) r.at(e, cpuField, `${cpus} vCPUs exceed the per-VM limit limits.vm.vcpus ${vm.vcpus} ${from}`);
    if (vm.memory !== undefined && mem > vm.memory) r.at(e, memField, `memory ${formatSize(mem)} exceeds the per-VM limit limits.vm.memory ${formatSize(vm.memory)} ${from}`);
    const [cpuBefore, memBefore] = [vcpus, memory];
    vcpus += cpus;
    memory += mem;
    if (host.vcpus !== undefined && vcpus > host.vcpus && cpuBefore <= host.vcpus) {
      r.at(e, cpuField, `total vCPUs of all VMs (${vcpus} with this one) exceed the host limit limits.host.vcpus ${host.vcpus} ${from}`);
    }
    if (host.memory !== undefined && memory > host.memory && memBefore <= host.memory) {
      r.at(e, memField, `total memory of all VMs (${formatSize(memory)} with this one) exceeds the host limit limits.host.memory ${formatSize(host.memory)} ${from}`);
    }
  }
}
