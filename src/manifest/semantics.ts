/**
 * Checks that JSON Schema cannot express: sizes, paths, references between manifests, cycles,
 * network address plans, MAC/IP uniqueness and exclusive disk use.
 *
 * Decisions (documented here and in the schemas):
 *   - A backing volume may live in a different pool than its clone (the backing path is absolute).
 *   - A clone's capacity must be >= its backing volume's capacity.
 *   - A volume that backs another volume may not be attached to a VM (writing to it would corrupt
 *     every clone); a volume may be attached to at most one VM, once.
 *   - `source` images must exist as regular files at load time, and fit in `capacity`.
 *   - The same MAC may appear in one VM NIC and one DHCP host reservation, and then the NIC must
 *     attach to the network that holds the reservation. Two NICs or two reservations with the same
 *     MAC are errors. MACs must be unicast (first octet even). Comparison ignores case.
 *   - Network CIDRs must not overlap; DHCP addresses must be usable (not the network, broadcast or
 *     host/gateway address, which is the first usable one).
 */
import { readFile, stat } from 'node:fs/promises';
import { SeedError, seedFiles } from '../cloudinit/seed.js';
import { dirname, isAbsolute, posix, resolve } from 'node:path';
import type { ManifestError, FieldPath } from './errors.js';
import { fieldPathString, quote } from './errors.js';
import { cidrsOverlap, intToIp, ipToInt, parseCidr, unusableReason, type Cidr } from './ipv4.js';
import type { ImportRules, ResourceKind } from './model.js';
import { ManifestSizeError, formatSize, parseSize, roundUpToKiB } from './size.js';
import { locate, type SourceDoc } from './yaml-source.js';
import { fileSha256, readImageHeader, type LocalImageInfo } from './image.js';
import { isScratchPoolName } from '../model/definitions.js';
import type { NetworkSpec, SnapshotSpec, StoragePoolSpec, VirtualMachineSpec, VolumeSpec } from './types.generated.js';

export const MIN_MEMORY = 16 * 1024 ** 2;
export const MAX_MEMORY = 4 * 1024 ** 4;
export const MAX_CAPACITY = 64 * 1024 ** 4;

/** One document of a known kind, after schema validation (`valid`) and defaults. */
export interface Entry {
  sd: SourceDoc;
  kind: ResourceKind;
  /** metadata.name when it is a valid name. */
  name?: string;
  /** Passed apiVersion, kind and schema checks: `data` matches the kind's spec type. */
  valid: boolean;
  data: { metadata: { name: string }; spec: unknown };
  /** Volume: what the loader read of its local `source` file. */
  image?: LocalImageInfo;
  /** Volume with a URL source: what the policy allows its download and upload (see checkPolicyLimits). */
  importRules?: ImportRules;
}

type Spec<K extends ResourceKind> = K extends 'StoragePool'
  ? StoragePoolSpec
  : K extends 'Volume'
    ? VolumeSpec
    : K extends 'Network'
      ? NetworkSpec
      : K extends 'Snapshot'
        ? SnapshotSpec
        : VirtualMachineSpec;

export function specOf<K extends ResourceKind>(e: Entry, _kind: K): Spec<K> {
  return e.data.spec as Spec<K>;
}

/** A Volume's file name in its pool: spec.fileName, else `<name>.qcow2` (qcow2) / `<name>.img` (raw). */
function volumeFileOf(name: string, spec: VolumeSpec): string {
  return spec.fileName ?? `${name}.${spec.format === 'raw' ? 'img' : 'qcow2'}`;
}

function where(e: Entry): string {
  return `${e.sd.file}:${e.sd.start.line}`;
}

export class Reporter {
  readonly errors: ManifestError[] = [];
  at(e: Entry, path: FieldPath, message: string, opts: { key?: boolean } = {}): void {
    const pos = locate(e.sd, path, opts);
    this.errors.push({
      file: e.sd.file,
      line: pos.line,
      col: pos.col,
      kind: e.kind,
      ...(e.name ? { name: e.name } : {}),
      ...(path.length ? { field: fieldPathString(path) } : {}),
      message,
    });
  }
}

function sizeOrReport(r: Reporter, e: Entry, path: FieldPath, value: string | number): number | undefined {
  try {
    return parseSize(value);
  } catch (err) {
    if (err instanceof ManifestSizeError) {
      r.at(e, path, err.message);
      return undefined;
    }
    throw err;
  }
}

/** Whether {@link formatSize} shows `bytes` without rounding (8MiB yes, 15.26MiB no). */
/** Why a file named by a manifest cannot be used: missing, or the reason it cannot be read. */
function unreadable(err: NodeJS.ErrnoException): string {
  return err.code === 'ENOENT' || err.code === 'ENOTDIR' ? 'does not exist' : `cannot be read (${err.code ?? err.message})`;
}

function formatsExactly(bytes: number): boolean {
  try {
    return parseSize(formatSize(bytes)) === bytes;
  } catch { // safe-catch: a size parseSize refuses does not format exactly
    return false;
  }
}

function hasDotDot(p: string): boolean {
  return p.split(/[\\/]/).includes('..');
}

/**
 * spec.boot: a kernel is a host path or a declared raw Volume, not both (same for the initrd);
 * paths are absolute without ".." segments; an initrd or a command line needs a kernel. A volume
 * holding a kernel or initrd is read by QEMU at start, so it must not also be a VM's disk.
 */
function checkBoot(
  r: Reporter, e: Entry, boot: NonNullable<VirtualMachineSpec['boot']>,
  ref: (path: FieldPath, name: string) => Entry | undefined, diskOwners: Map<string, Entry>,
): void {
  const at = (f: string): FieldPath => ['spec', 'boot', f];
  for (const [file, vol] of [['kernel', 'kernelVolume'], ['initrd', 'initrdVolume']] as const) {
    const path = boot[file];
    const volume = boot[vol];
    if (path !== undefined && volume !== undefined) r.at(e, at(vol), `${file} and ${vol} are mutually exclusive`);
    if (path !== undefined) {
      if (hasDotDot(path)) r.at(e, at(file), `${file} path ${quote(path)} must not contain ".." segments`);
      else if (posix.normalize(path) !== path) r.at(e, at(file), `${file} path ${quote(path)} is not normalized (expected ${quote(posix.normalize(path))})`);
    }
    if (volume !== undefined) {
      const t = ref(at(vol), volume);
      if (t && specOf(t, 'Volume').format !== 'raw') {
        r.at(e, at(vol), `volume ${quote(volume)} holds a ${file}: it must have format raw, not ${specOf(t, 'Volume').format ?? 'qcow2'}`);
      }
      const owner = diskOwners.get(volume);
      if (owner) r.at(e, at(vol), `volume ${quote(volume)} is attached as a disk to VirtualMachine ${quote(owner.name)} (${where(owner)}); it cannot also be a ${file}`);
    }
  }
  const hasKernel = boot.kernel !== undefined || boot.kernelVolume !== undefined;
  if (!hasKernel) {
    for (const f of ['initrd', 'initrdVolume', 'cmdline'] as const) {
      if (boot[f] !== undefined) r.at(e, at(f), `${f} needs a kernel (spec.boot.kernel or spec.boot.kernelVolume)`);
    }
  }
}

/** Largest user-data file read (cloud-init's own limit for NoCloud is far above what a seed should hold). */
export const MAX_USER_DATA = 1024 * 1024;

/**
 * spec.cloudInit: userData xor userDataFile (read here, relative to the manifest; the spec then
 * carries the text in userData and the absolute path in userDataFile); the seed pool is the
 * declared one or the pool of the first disk's volume (written into `pool`), and one of them must
 * exist; meta-data, network-config and keys are checked by building the seed's files.
 */
async function checkCloudInit(
  r: Reporter, e: Entry, ci: NonNullable<VirtualMachineSpec['cloudInit']>, diskPool: string | undefined,
  ref: (path: FieldPath, name: string) => Entry | undefined, confine?: Confinement,
): Promise<void> {
  const at = (...f: (string | number)[]): FieldPath => ['spec', 'cloudInit', ...f];
  if (ci.pool !== undefined) ref(at('pool'), ci.pool);
  else if (diskPool !== undefined) ci.pool = diskPool;
  else r.at(e, ['spec', 'cloudInit'], 'the seed needs a pool: set spec.cloudInit.pool (or give the VM a disk: its volume\'s pool is the default)', { key: true });
  if (ci.seedVolume !== undefined) {
    // An existing seed, attached as it is: nothing to build, so nothing to build it from.
    for (const f of ['userData', 'userDataFile', 'metaData', 'networkConfig', 'sshAuthorizedKeys'] as const) {
      if (ci[f] !== undefined) r.at(e, at(f), `${f} and seedVolume are mutually exclusive (seedVolume attaches an existing seed as it is; virtform builds none)`);
    }
    return;
  }
  if (ci.userData !== undefined && ci.userDataFile !== undefined) {
    r.at(e, at('userDataFile'), 'userData and userDataFile are mutually exclusive');
    return;
  }
  if (ci.userData !== undefined && typeof ci.userData === 'string') {
    // Inline user-data follows the rules of a userDataFile: UTF-8 text without NUL, at most 1 MiB. Never echoed.
    const bytes = Buffer.byteLength(ci.userData, 'utf8');
    if (bytes > MAX_USER_DATA) return r.at(e, at('userData'), `user-data is larger than 1MiB (${bytes} bytes)`);
    if (ci.userData.includes('\u0000')) return r.at(e, at('userData'), 'user-data contains a NUL character: not text (the text is not shown)');
    if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(ci.userData)) return r.at(e, at('userData'), 'user-data is not UTF-8 text (a lone surrogate escape; the text is not shown)');
  }
  if (ci.userDataFile !== undefined) {
    const f = ci.userDataFile;
    if (hasDotDot(f)) return r.at(e, at('userDataFile'), `userDataFile ${quote(f)} must not contain ".." segments`);
    const abs = isAbsolute(f) ? posix.normalize(f) : resolve(dirname(resolve(e.sd.file)), f);
    if (!isAbsolute(f) && confine && !confine.inside(abs)) {
      return r.at(e, at('userDataFile'), `user-data file ${quote(f, 512)} resolves outside ${confine.what} (a symlink?): not read`);
    }
    const st = await stat(abs).catch((err: NodeJS.ErrnoException) => err);
    if (st instanceof Error) return r.at(e, at('userDataFile'), `user-data file ${quote(abs, 512)} ${unreadable(st)}`);
    if (!st.isFile()) return r.at(e, at('userDataFile'), `user-data file ${quote(abs, 512)} is not a regular file`);
    if (st.size > MAX_USER_DATA) return r.at(e, at('userDataFile'), `user-data file ${quote(abs, 512)} is larger than 1MiB (${st.size} bytes)`);
    // The one read from outside the manifest files into their values: the load cache keys the
    // desired state's digest on it too (load-cache.ts, stateKey); another such read must go there.
    const bytes = await readFile(abs).catch((err: NodeJS.ErrnoException) => err);
    if (bytes instanceof Error) return r.at(e, at('userDataFile'), `user-data file ${quote(abs, 512)} ${unreadable(bytes)}`);
    const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
    if (text.includes('\uFFFD') || text.includes('\u0000')) return r.at(e, at('userDataFile'), `user-data file ${quote(abs, 512)} is not UTF-8 text`);
    ci.userDataFile = abs;
    ci.userData = text;
  }
  try {
    seedFiles({
      vmName: e.name ?? 'vm', userData: ci.userData,
      metaData: ci.metaData as Record<string, unknown> | undefined,
      networkConfig: ci.networkConfig as Record<string, unknown> | string | undefined,
      sshAuthorizedKeys: ci.sshAuthorizedKeys,
    });
  } catch (err) {
    if (!(err instanceof SeedError)) throw err;
    const path = err.field.split(/\.|\[(\d+)\]/).filter((x) => x !== undefined && x !== '').map((x) => (/^\d+$/.test(x) ? Number(x) : x));
    // meta-data keys checked by the builder may be defaults, not in the manifest: point at the mapping.
    const p = path[0] === 'metaData' && !(ci.metaData && String(path[1]) in ci.metaData) ? ['metaData'] : path;
    r.at(e, at(...p), err.message.replace(/^[^:]*: /, ''));
  }
}

/** The bus of a declared disk: its own, else virtio (ide for a cdrom). */
export function diskBus(d: { bus?: string; device?: string }): 'virtio' | 'sata' | 'scsi' | 'ide' {
  return (d.bus ?? (d.device === 'cdrom' ? 'ide' : 'virtio')) as 'virtio' | 'sata' | 'scsi' | 'ide';
}

function isUnicast(mac: string): boolean {
  return (parseInt(mac.slice(0, 2), 16) & 1) === 0;
}

/** A sandbox relative paths in manifests must stay in (checked on the real path, before opening). */
export interface Confinement {
  inside(path: string): boolean;
  /** What the sandbox is, for messages ("the repository checkout"). */
  what: string;
}

export async function checkSemantics(entries: Entry[], opts: {
  skipSourceProbe?: ReadonlySet<Entry>; confine?: Confinement;
  /** The virtual size of a URL image already in the image cache (plan time), for the size rules. */
  cachedImageSize?: (sha256: string) => Promise<number | undefined>;
} = {}): Promise<ManifestError[]> {
  const r = new Reporter();
  const byKind = (k: ResourceKind): Entry[] => entries.filter((e) => e.kind === k);

  // Names: first definition wins; later ones are duplicates. Invalid documents still claim their
  // names so that references to them are not reported as dangling on top of their own errors.
  const names: Record<ResourceKind, Map<string, Entry>> = {
    StoragePool: new Map(),
    Volume: new Map(),
    Network: new Map(),
    VirtualMachine: new Map(),
    Snapshot: new Map(),
  };
  for (const e of entries) {
    if (!e.name) continue;
    const first = names[e.kind].get(e.name);
    if (first) r.at(e, ['metadata', 'name'], `duplicate ${e.kind} name ${quote(e.name)} (first defined at ${where(first)})`);
    else names[e.kind].set(e.name, e);
  }
  const validNamed = (k: ResourceKind, name: string): Entry | undefined => {
    const t = names[k].get(name);
    return t && t.valid ? t : undefined;
  };
  const refCheck = (e: Entry, path: FieldPath, k: ResourceKind, name: string): Entry | undefined => {
    const t = names[k].get(name);
    if (!t) {
      r.at(e, path, `${k} ${quote(name)} is not defined`);
      return undefined;
    }
    return t.valid ? t : undefined;
  };

  // Documents that failed the schema get only their references checked (defensively), so one
  // run still reports every dangling reference; other rules need a well-typed spec.
  const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const refIfName = (e: Entry, path: FieldPath, k: ResourceKind, v: unknown): void => {
    if (typeof v === 'string' && NAME.test(v)) refCheck(e, path, k, v);
  };
  for (const e of entries) {
    if (e.valid) continue;
    const spec: unknown = isObj(e.data) ? e.data.spec : undefined;
    if (!isObj(spec)) continue;
    if (e.kind === 'Volume') {
      refIfName(e, ['spec', 'pool'], 'StoragePool', spec.pool);
      refIfName(e, ['spec', 'backingVolume'], 'Volume', spec.backingVolume);
    } else if (e.kind === 'Snapshot') {
      refIfName(e, ['spec', 'vm'], 'VirtualMachine', spec.vm);
    } else if (e.kind === 'VirtualMachine') {
      if (Array.isArray(spec.disks)) {
        spec.disks.forEach((d: unknown, i) => {
          if (isObj(d)) refIfName(e, ['spec', 'disks', i, 'volume'], 'Volume', d.volume);
        });
      }
      if (Array.isArray(spec.nics)) {
        spec.nics.forEach((n: unknown, i) => {
          if (isObj(n)) refIfName(e, ['spec', 'nics', i, 'network'], 'Network', n.network);
        });
      }
    }
  }

  // ---- StoragePools --------------------------------------------------------------------------
  const poolPaths: { e: Entry; path: string }[] = [];
  for (const e of byKind('StoragePool')) {
    if (!e.valid) continue;
    const spec = specOf(e, 'StoragePool');
    if (e.name && isScratchPoolName(e.name)) r.at(e, ['metadata', 'name'], `name ${quote(e.name)} is reserved: virtform names its own scratch pools so (virtform-probe-… and virtform-rmdir-… with 12 hex digits)`);
    const p = spec.path;
    if (hasDotDot(p)) r.at(e, ['spec', 'path'], `path ${quote(p)} must not contain ".." segments`);
    else if (p === '/') r.at(e, ['spec', 'path'], 'path must not be the root directory');
    else if (posix.normalize(p) !== p || p.endsWith('/')) {
      r.at(e, ['spec', 'path'], `path ${quote(p)} is not normalized (expected ${quote(posix.normalize(p).replace(/\/+$/, '') || '/')})`);
    } else {
      for (const other of poolPaths) {
        if (other.path === p) {
          r.at(e, ['spec', 'path'], `path ${quote(p)} is already used by StoragePool ${quote(other.e.name)} (${where(other.e)})`);
        } else if (p.startsWith(`${other.path}/`) || other.path.startsWith(`${p}/`)) {
          r.at(e, ['spec', 'path'], `path ${quote(p)} is nested with StoragePool ${quote(other.e.name)} path ${quote(other.path)} (${where(other.e)})`);
        }
      }
      poolPaths.push({ e, path: p });
    }
  }

  // ---- Volumes -------------------------------------------------------------------------------
  const capacities = new Map<string, number>();
  for (const e of byKind('Volume')) {
    if (!e.valid) continue;
    const spec = specOf(e, 'Volume');
    const cap = spec.capacity === undefined ? undefined : sizeOrReport(r, e, ['spec', 'capacity'], spec.capacity);
    if (spec.capacity === undefined && spec.source === undefined) {
      r.at(e, ['spec', 'capacity'], 'capacity is required (it may be left out only with a source image, whose virtual size it then is)');
    }
    if (cap !== undefined) {
      if (cap <= 0) r.at(e, ['spec', 'capacity'], 'capacity must be greater than 0');
      else if (cap > MAX_CAPACITY) r.at(e, ['spec', 'capacity'], `capacity ${formatSize(cap)} exceeds the 64TiB limit`);
      // Any other size is accepted: the Volume kind rounds it up to what the host stores (whole KiB).
      else if (e.name) capacities.set(e.name, cap);
    }
    refCheck(e, ['spec', 'pool'], 'StoragePool', spec.pool);
    if (spec.backingVolume !== undefined && spec.source !== undefined) {
      r.at(e, ['spec', 'source'], 'source and backingVolume are mutually exclusive');
    }
    if (spec.backingVolume !== undefined) {
      if (spec.format === 'raw') r.at(e, ['spec', 'backingVolume'], 'a backingVolume (copy-on-write clone) requires format qcow2, not raw');
      refCheck(e, ['spec', 'backingVolume'], 'Volume', spec.backingVolume);
    }
    if (typeof spec.source === 'object') {
      try {
        const u = new URL(spec.source.url);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') r.at(e, ['spec', 'source', 'url'], 'only http:// and https:// URLs are supported');
        else if (!u.hostname) r.at(e, ['spec', 'source', 'url'], 'the URL has no host');
      } catch { // safe-catch: reported on the next line as an invalid URL
        r.at(e, ['spec', 'source', 'url'], 'is not a valid URL');
      }
      spec.source.sha256 = spec.source.sha256.toLowerCase();
      // Downloaded before: its size is known now, so the size rules apply when planning.
      const cached = opts.cachedImageSize ? await opts.cachedImageSize(spec.source.sha256).catch(() => undefined) : undefined; // safe-catch: an unreadable cache entry is an unknown size, checked again at the clone's create step
      if (cached !== undefined && cap !== undefined && cap > 0 && cached > cap) {
        r.at(e, ['spec', 'capacity'], `capacity ${formatSize(cap)} is smaller than the source image (cached download, ${cached} bytes virtual size)`);
      } else if (cached !== undefined && cap === undefined && e.name) capacities.set(e.name, cached);
    } else if (spec.source !== undefined) {
      const src = spec.source;
      if (hasDotDot(src)) {
        r.at(e, ['spec', 'source'], `source ${quote(src)} must not contain ".." segments`);
      } else {
        const abs = isAbsolute(src) ? posix.normalize(src) : resolve(dirname(resolve(e.sd.file)), src);
        spec.source = abs; // the loader rewrites relative paths to absolute ones
        const escapes = !isAbsolute(src) && opts.confine !== undefined && !opts.confine.inside(abs);
        // Refused by the policy or outside the sandbox: never opened (not even its header).
        const st = opts.skipSourceProbe?.has(e) || escapes ? 'skip' as const : await stat(abs).catch((err: NodeJS.ErrnoException) => err);
        if (escapes) r.at(e, ['spec', 'source'], `source image ${quote(src, 512)} resolves outside ${opts.confine!.what} (a symlink?): not read`);
        else if (st === 'skip') { /* reported by the policy check */ }
        else if (st instanceof Error) r.at(e, ['spec', 'source'], `source image ${quote(abs, 512)} ${unreadable(st)}`);
        else if (!st.isFile()) r.at(e, ['spec', 'source'], `source image ${quote(abs, 512)} is not a regular file`);
        else {
          const img = await readImageHeader(abs, st.size).catch((err: NodeJS.ErrnoException) => err);
          if (img instanceof Error) r.at(e, ['spec', 'source'], `source image ${quote(abs, 512)} ${unreadable(img)}`);
          else if (img.backingFile) r.at(e, ['spec', 'source'], `source image ${quote(abs, 512)} is a qcow2 image with a backing file: refused (it could read other host files)`);
          else if (img.externalDataFile) r.at(e, ['spec', 'source'], `source image ${quote(abs, 512)} is a qcow2 image with an external data file: refused (it could read other host files)`);
          else if (cap !== undefined && cap > 0 && img.virtualSize > cap) {
            r.at(e, ['spec', 'capacity'], `capacity ${formatSize(cap)} is smaller than the source image (${img.format}, ${img.virtualSize} bytes virtual size)`);
          } else {
            const sha256 = await fileSha256(abs, st).catch((err: NodeJS.ErrnoException) => err);
            if (sha256 instanceof Error) r.at(e, ['spec', 'source'], `source image ${quote(abs, 512)} ${unreadable(sha256)}`);
            else {
              e.image = { sha256, size: st.size, format: img.format, virtualSize: img.virtualSize };
              // Left out: the image's virtual size (known now, from the file's header).
              if (cap === undefined && e.name && img.virtualSize > 0) capacities.set(e.name, img.virtualSize);
            }
          }
        }
      }
    }
  }
  // Backing: cycles, capacity.
  const backingOf = (name: string): string | undefined => {
    const t = validNamed('Volume', name);
    return t ? specOf(t, 'Volume').backingVolume : undefined;
  };
  const backingTargets = new Map<string, string>(); // backing volume → first clone
  for (const e of byKind('Volume')) {
    if (!e.valid || !e.name || names.Volume.get(e.name) !== e) continue;
    const spec = specOf(e, 'Volume');
    if (spec.backingVolume === undefined) continue;
    if (!backingTargets.has(spec.backingVolume)) backingTargets.set(spec.backingVolume, e.name);
    const chain = [e.name];
    let cur: string | undefined = spec.backingVolume;
    let cycle = false;
    const seen = new Set(chain);
    while (cur !== undefined) {
      chain.push(cur);
      if (cur === e.name) {
        cycle = true;
        break;
      }
      if (seen.has(cur)) break; // a cycle further down the chain: reported on its members
      seen.add(cur);
      cur = backingOf(cur);
    }
    if (cycle) {
      r.at(e, ['spec', 'backingVolume'], `backing chain forms a cycle: ${chain.join(' -> ')}`);
      continue;
    }
    const mine = capacities.get(e.name);
    const theirs = capacities.get(spec.backingVolume);
    if (mine !== undefined && theirs !== undefined && mine < theirs) {
      r.at(e, ['spec', 'capacity'], `capacity ${formatSize(mine)} is smaller than backing volume ${quote(spec.backingVolume)} (${formatSize(theirs)})`);
    }
  }

  // Files: a volume's file in its pool (`spec.fileName`, else `<name>.qcow2` / `<name>.img`) is
  // its own; a second Volume naming it would be the same file under two resources.
  const volumeFiles = new Map<string, Entry>(); // `pool/file` → Volume
  for (const e of byKind('Volume')) {
    if (!e.valid || !e.name || names.Volume.get(e.name) !== e) continue;
    const spec = specOf(e, 'Volume');
    const file = volumeFileOf(e.name, spec);
    const first = volumeFiles.get(`${spec.pool}/${file}`);
    if (first) {
      r.at(e, spec.fileName !== undefined ? ['spec', 'fileName'] : ['metadata', 'name'],
        `file ${quote(file)} in pool ${quote(spec.pool)} is already the file of Volume ${quote(first.name!)} (${where(first)}): two Volumes cannot name the same file`);
    } else volumeFiles.set(`${spec.pool}/${file}`, e);
  }

  // ---- Networks ------------------------------------------------------------------------------
  const cidrs: { e: Entry; cidr: Cidr; text: string }[] = [];
  const reservedMacs = new Map<string, { e: Entry; path: FieldPath; network: string }>();
  const staticIps = new Map<string, Entry>();
  for (const e of byKind('Network')) {
    if (!e.valid) continue;
    const spec = specOf(e, 'Network');
    if (spec.mode === 'bridge') {
      if (spec.bridge === undefined) r.at(e, ['spec', 'bridge'], 'missing required field "bridge" (required for mode bridge)');
      if (spec.cidr !== undefined) r.at(e, ['spec', 'cidr'], 'cidr is not allowed with mode bridge (addresses come from the bridged LAN)');
      if (spec.dhcp !== undefined) r.at(e, ['spec', 'dhcp'], 'dhcp is not allowed with mode bridge');
      continue;
    }
    if (spec.bridge !== undefined) r.at(e, ['spec', 'bridge'], `bridge is only allowed with mode bridge, not ${spec.mode}`);
    if (spec.cidr === undefined) {
      r.at(e, ['spec', 'cidr'], `missing required field "cidr" (required for mode ${spec.mode})`);
      continue;
    }
    const cidr = parseCidr(spec.cidr);
    if (cidr.hostBits) {
      r.at(e, ['spec', 'cidr'], `cidr ${spec.cidr} has host bits set (did you mean ${intToIp(cidr.base)}/${cidr.prefix}?)`);
      continue;
    }
    for (const other of cidrs) {
      if (cidrsOverlap(cidr, other.cidr)) {
        r.at(e, ['spec', 'cidr'], `cidr ${spec.cidr} overlaps ${other.text} of Network ${quote(other.e.name)} (${where(other.e)})`);
      }
    }
    cidrs.push({ e, cidr, text: spec.cidr });
    const dhcp = spec.dhcp;
    if (!dhcp) continue;
    const startBad = unusableReason(dhcp.start, cidr, spec.cidr);
    const endBad = unusableReason(dhcp.end, cidr, spec.cidr);
    if (startBad) r.at(e, ['spec', 'dhcp', 'start'], `DHCP range start ${startBad}`);
    if (endBad) r.at(e, ['spec', 'dhcp', 'end'], `DHCP range end ${endBad}`);
    if (!startBad && !endBad && ipToInt(dhcp.start) > ipToInt(dhcp.end)) {
      r.at(e, ['spec', 'dhcp', 'end'], `DHCP range end ${dhcp.end} is before start ${dhcp.start}`);
    }
    (dhcp.hosts ?? []).forEach((h, i) => {
      const bad = unusableReason(h.ip, cidr, spec.cidr!);
      if (bad) r.at(e, ['spec', 'dhcp', 'hosts', i, 'ip'], `DHCP host ${bad}`);
      else {
        const prev = staticIps.get(h.ip);
        if (prev) r.at(e, ['spec', 'dhcp', 'hosts', i, 'ip'], `static IP ${h.ip} is already reserved (${where(prev)})`);
        else staticIps.set(h.ip, e);
      }
      const mac = h.mac.toLowerCase();
      if (!isUnicast(mac)) r.at(e, ['spec', 'dhcp', 'hosts', i, 'mac'], `MAC ${h.mac} is a multicast address (first octet must be even)`);
      const prevMac = reservedMacs.get(mac);
      if (prevMac) r.at(e, ['spec', 'dhcp', 'hosts', i, 'mac'], `MAC ${h.mac} is already reserved by Network ${quote(prevMac.network)} (${where(prevMac.e)})`);
      else reservedMacs.set(mac, { e, path: ['spec', 'dhcp', 'hosts', i, 'mac'], network: e.name ?? '' });
    });
  }

  // ---- VirtualMachines -----------------------------------------------------------------------
  const diskOwners = new Map<string, Entry>();
  const nicMacs = new Map<string, Entry>();
  for (const e of byKind('VirtualMachine')) {
    if (!e.valid) continue;
    const spec = specOf(e, 'VirtualMachine');
    const given = sizeOrReport(r, e, ['spec', 'memory'], spec.memory);
    // libvirt counts memory in KiB: a size that is not a whole KiB (e.g. 1GB = 10^9 bytes) is
    // rounded UP, and the manifest carries the rounded byte count from here on.
    const mem = given === undefined ? undefined : roundUpToKiB(given);
    if (given !== undefined && mem !== undefined) {
      const shown = formatsExactly(mem) ? formatSize(mem) : `${mem} bytes`;
      if (mem < MIN_MEMORY) r.at(e, ['spec', 'memory'], `memory ${shown} is below the 16MiB minimum`);
      else if (mem > MAX_MEMORY) r.at(e, ['spec', 'memory'], `memory ${shown} exceeds the 4TiB limit`);
      else if (mem !== given) spec.memory = mem;
    }
    if (spec.maxMemory !== undefined) {
      const maxGiven = sizeOrReport(r, e, ['spec', 'maxMemory'], spec.maxMemory);
      const max = maxGiven === undefined ? undefined : roundUpToKiB(maxGiven); // rounded up like memory
      if (max !== undefined && max !== maxGiven) spec.maxMemory = max;
      if (max !== undefined) {
        if (max > MAX_MEMORY) r.at(e, ['spec', 'maxMemory'], `maxMemory ${formatSize(max)} exceeds the 4TiB limit`);
        else if (mem !== undefined && max < mem) r.at(e, ['spec', 'maxMemory'], `maxMemory ${formatSize(max)} is below memory ${formatSize(mem)}`);
      }
    }
    if (spec.maxVcpus !== undefined && spec.maxVcpus < spec.vcpus) {
      r.at(e, ['spec', 'maxVcpus'], `maxVcpus ${spec.maxVcpus} is below vcpus ${spec.vcpus}`);
    }
    if (spec.cpu) {
      if (spec.cpu.mode === 'custom' && spec.cpu.model === undefined) {
        r.at(e, ['spec', 'cpu', 'mode'], 'cpu mode custom needs a model (e.g. model: Westmere)');
      } else if (spec.cpu.mode !== 'custom' && spec.cpu.model !== undefined) {
        r.at(e, ['spec', 'cpu', 'model'], `a cpu model is only for mode custom, not ${spec.cpu.mode}`);
      }
    }
    const boots = new Map<number, number>();
    const ownVolumes = new Set<string>();
    (spec.disks ?? []).forEach((d, i) => {
      const path: FieldPath = ['spec', 'disks', i, 'volume'];
      if (ownVolumes.has(d.volume)) r.at(e, path, `volume ${quote(d.volume)} is attached twice to this VM`);
      else if (refCheck(e, path, 'Volume', d.volume) !== undefined || names.Volume.has(d.volume)) {
        const owner = diskOwners.get(d.volume);
        if (owner && owner !== e) {
          r.at(e, path, `volume ${quote(d.volume)} is already attached to VirtualMachine ${quote(owner.name)} (${where(owner)}); a disk can't be attached to two VMs`);
        } else diskOwners.set(d.volume, e);
        const clone = backingTargets.get(d.volume);
        if (clone !== undefined) {
          r.at(e, path, `volume ${quote(d.volume)} is the backing volume of ${quote(clone)} and cannot be attached to a VM`);
        }
      }
      ownVolumes.add(d.volume);
      // The bus default depends on the device (the schema has none): virtio, ide for a cdrom.
      const explicitBus = d.bus;
      d.bus = diskBus(d);
      if (d.device === 'cdrom' && explicitBus === 'virtio') {
        r.at(e, ['spec', 'disks', i, 'bus'], 'a cdrom cannot be on the virtio bus: use ide (the default for a cdrom), sata or scsi');
      }
      if (d.boot !== undefined) {
        const prev = boots.get(d.boot);
        if (prev !== undefined) r.at(e, ['spec', 'disks', i, 'boot'], `boot order ${d.boot} is already used by disks[${prev}]`);
        else boots.set(d.boot, i);
      }
    });
    // IDE: the pc machine has one controller, two buses of two units: four devices, the seed's cdrom included.
    const ide = (spec.disks ?? []).map((d, i) => (diskBus(d) === 'ide' ? i : -1)).filter((i) => i >= 0);
    const ideMax = spec.cloudInit ? 3 : 4;
    if (ide.length > ideMax) {
      r.at(e, ['spec', 'disks', ide[ideMax]!, 'bus'], `more than ${ideMax} ide disks${spec.cloudInit ? ' (the cloud-init seed is a fourth ide device)' : ''}: the machine has one IDE controller with four units; use virtio, sata or scsi`);
    }
    if (spec.cloudInit) {
      const firstDisk = spec.disks?.[0]?.volume;
      const diskPool = firstDisk !== undefined ? validNamed('Volume', firstDisk) : undefined;
      await checkCloudInit(r, e, spec.cloudInit, diskPool ? specOf(diskPool, 'Volume').pool : undefined, (path, name) => refCheck(e, path, 'StoragePool', name), opts.confine);
      const sv = spec.cloudInit.seedVolume;
      const declared = sv !== undefined ? validNamed('Volume', sv) : undefined;
      if (declared && specOf(declared, 'Volume').pool === spec.cloudInit.pool) {
        r.at(e, ['spec', 'cloudInit', 'seedVolume'], `seedVolume ${quote(sv!)} is declared as a Volume (${where(declared)}): the seed is derived data of the VM (deleted with it), not a Volume of its own; remove that Volume manifest`);
      } else if (spec.cloudInit.pool !== undefined && e.name) {
        // The seed's file (`<vm>-cidata.iso` or seedVolume) named by a Volume's spec.fileName: one file, two owners.
        const seedFile = sv ?? `${e.name}-cidata.iso`;
        const owner = volumeFiles.get(`${spec.cloudInit.pool}/${seedFile}`);
        if (owner) {
          r.at(e, ['spec', 'cloudInit', sv !== undefined ? 'seedVolume' : 'pool'],
            `the cloud-init seed's file ${quote(seedFile)} in pool ${quote(spec.cloudInit.pool)} is the file of Volume ${quote(owner.name!)} (${where(owner)}): the seed is derived data of the VM (deleted with it), not a Volume; give that Volume another spec.fileName or remove it`);
        }
      }
    }
    (spec.nics ?? []).forEach((n, i) => {
      refCheck(e, ['spec', 'nics', i, 'network'], 'Network', n.network);
      if (n.mac === undefined) return;
      const path: FieldPath = ['spec', 'nics', i, 'mac'];
      const mac = n.mac.toLowerCase();
      if (!isUnicast(mac)) r.at(e, path, `MAC ${n.mac} is a multicast address (first octet must be even)`);
      const prev = nicMacs.get(mac);
      if (prev) {
        r.at(e, path, `MAC ${n.mac} is already used by a NIC of VirtualMachine ${quote(prev.name)} (${where(prev)})`);
      } else nicMacs.set(mac, e);
      const reserved = reservedMacs.get(mac);
      if (reserved && reserved.network !== n.network) {
        r.at(e, path, `MAC ${n.mac} has a DHCP reservation in Network ${quote(reserved.network)} (${where(reserved.e)}) but this NIC attaches to ${quote(n.network)}`);
      }
    });
  }
  // Boot volumes after every VM's disks are known (a kernel volume may not be another VM's disk either).
  for (const e of byKind('VirtualMachine')) {
    if (!e.valid) continue;
    const boot = specOf(e, 'VirtualMachine').boot;
    if (boot) checkBoot(r, e, boot, (path, name) => refCheck(e, path, 'Volume', name), diskOwners);
  }

  // ---- Snapshots -----------------------------------------------------------------------------
  // Internal qcow2 snapshots (libvirt 9.0 cannot revert external ones): every writable disk of the
  // VM is a qcow2 volume, and no UEFI NVRAM (a raw pflash file). The cloud-init seed is a
  // read-only CD-ROM, which libvirt leaves out of a snapshot.
  for (const e of byKind('Snapshot')) {
    if (!e.valid) continue;
    const spec = specOf(e, 'Snapshot');
    const vm = refCheck(e, ['spec', 'vm'], 'VirtualMachine', spec.vm);
    if (!vm) continue;
    const vmSpec = specOf(vm, 'VirtualMachine');
    (vmSpec.disks ?? []).forEach((d) => {
      if (d.device === 'cdrom') return; // read-only: libvirt leaves it out of a snapshot, like the seed
      const vol = validNamed('Volume', d.volume);
      if (vol && specOf(vol, 'Volume').format === 'raw') {
        r.at(e, ['spec', 'vm'], `VirtualMachine ${quote(spec.vm)} has a raw writable disk (volume ${quote(d.volume)}, ${where(vol)}): ` +
          'an internal snapshot needs every writable disk to be qcow2 (libvirt 9.0 cannot revert external snapshots)');
      }
    });
    if (vmSpec.boot?.firmware === 'uefi') {
      r.at(e, ['spec', 'vm'], `VirtualMachine ${quote(spec.vm)} boots UEFI firmware (spec.boot.firmware, ${where(vm)}): its NVRAM is a raw pflash file, ` +
        'which libvirt cannot snapshot internally');
    }
    if (spec.memory === true && vmSpec.state === 'stopped') {
      r.at(e, ['spec', 'memory'], `VirtualMachine ${quote(spec.vm)} is declared stopped (${where(vm)}): a stopped VM has no memory to save; ` +
        'set memory: false for a snapshot of its disks, or declare it running');
    }
  }
  return r.errors;
}
