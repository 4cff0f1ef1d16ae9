/**
 * Loading a manifest folder: find `*.yaml`/`*.yml` files recursively (skipping dot-directories and
 * dot-files, not following symlinked directories), parse every document, validate everything and
 * return either the complete desired state or every error found, sorted by file, line, column.
 */
import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fieldPathString as fieldPath, quote, sortErrors, type ManifestError } from './errors.js';
import {
  API_VERSION,
  MANIFEST_KINDS,
  type AnyManifest,
  type DesiredState,
  type NetworkManifest,
  type ManifestKind,
  type StoragePoolManifest,
  type VirtualMachineManifest,
  type SnapshotManifest,
  type VolumeManifest,
} from './model.js';
import { validateAgainstSchema } from './schema.js';
import { checkSemantics, specOf, type Entry } from './semantics.js';
import { checkPolicy, checkPolicyLimits, realPathOf, within, type CachedImageSize, type Policy } from './policy.js';
import { checkExtraDevices } from './extra-devices.js';
import { checkFleet, type HostEntry } from './hosts.js';
import type { HostDefinition } from '../model/hosts.js';
import { MAX_FILE_BYTES, docToJs, locate, parseYamlFile, type SourceDoc } from './yaml-source.js';

export type LoadResult = { ok: true; desired: DesiredState } | { ok: false; errors: ManifestError[] };

export const NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const YAML_EXT = /\.ya?ml$/;

/** Recursively list YAML files (relative paths, '/'-separated, sorted). */
async function listYamlFiles(root: string, rel = ''): Promise<string[]> {
  const entries = await readdir(join(root, rel), { withFileTypes: true });
  const out: string[] = [];
  for (const ent of entries) {
    if (ent.name.startsWith('.')) continue;
    const relPath = rel ? `${rel}/${ent.name}` : ent.name;
    if (ent.isDirectory()) out.push(...(await listYamlFiles(root, relPath)));
    else if (YAML_EXT.test(ent.name)) {
      if (ent.isFile()) out.push(relPath);
      else if (ent.isSymbolicLink()) {
        // safe-catch: a dangling symlink is not a manifest file
        const st = await stat(join(root, relPath)).catch(() => undefined);
        if (st?.isFile()) out.push(relPath);
      }
    }
  }
  return out.sort();
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function docError(sd: SourceDoc, path: (string | number)[], message: string, extra: Partial<ManifestError> = {}): ManifestError {
  const pos = locate(sd, path, {});
  return { file: sd.file, line: pos.line, col: pos.col, ...extra, ...(path.length ? { field: path.join('.') } : {}), message };
}

/** Check apiVersion/kind and the kind's schema; returns the entry (if the kind is known) and errors. */
function checkDocument(sd: SourceDoc, errors: ManifestError[]): Entry | HostEntry | undefined {
  const js = docToJs(sd);
  if (!js.ok) {
    errors.push(js.error);
    return undefined;
  }
  const data = js.value;
  if (!isPlainObject(data)) {
    const what = Array.isArray(data) ? 'a list' : data === null ? 'null' : `a ${typeof data}`;
    errors.push(docError(sd, [], `document must be a mapping with apiVersion, kind, metadata and spec, got ${what}`));
    return undefined;
  }
  const kindValue = data.kind;
  const kind = typeof kindValue === 'string' && (MANIFEST_KINDS as readonly string[]).includes(kindValue) ? (kindValue as ManifestKind) : undefined;
  const meta = data.metadata;
  const rawName = isPlainObject(meta) ? meta.name : undefined;
  const name = typeof rawName === 'string' && NAME_RE.test(rawName) ? rawName : undefined;
  const who: Partial<ManifestError> = { ...(kind ? { kind } : {}), ...(name ? { name } : {}) };

  let ok = true;
  if (!('apiVersion' in data)) {
    errors.push(docError(sd, [], `missing required field "apiVersion" (expected ${quote(API_VERSION)})`, { ...who, field: 'apiVersion' }));
    ok = false;
  } else if (data.apiVersion !== API_VERSION) {
    errors.push(docError(sd, ['apiVersion'], `unsupported apiVersion ${quote(data.apiVersion)} (expected ${quote(API_VERSION)})`, who));
    ok = false;
  }
  if (!('kind' in data)) {
    errors.push(docError(sd, [], `missing required field "kind" (one of ${MANIFEST_KINDS.join(', ')})`, { ...who, field: 'kind' }));
    return undefined;
  }
  if (!kind) {
    errors.push(docError(sd, ['kind'], `unknown kind ${quote(kindValue)} (expected one of ${MANIFEST_KINDS.join(', ')})`, who));
    return undefined;
  }
  for (const p of validateAgainstSchema(kind, data)) {
    if (p.path[0] === 'apiVersion' || p.path[0] === 'kind') continue;
    const pos = locate(sd, p.locatePath, { key: p.atKey });
    errors.push({
      file: sd.file,
      line: pos.line,
      col: pos.col,
      ...who,
      ...(p.path.length ? { field: fieldPath(p.path) } : {}),
      message: p.message,
    });
    ok = false;
  }
  if (kind === 'Host') return { sd, ...(name ? { name } : {}), valid: ok, data: data as HostEntry['data'] };
  return { sd, kind, ...(name ? { name } : {}), valid: ok, data: data as Entry['data'] };
}

/**
 * A document's value as the cross-file checks may fill it in: copies of the objects they write to
 * (the value, its `spec` — a relative `source` made absolute, `memory`/`maxMemory` normalized —,
 * `spec.cloudInit` — the seed pool, a userDataFile's path and text — and each of `spec.disks` — its
 * bus default), everything below shared with
 * the per-file result. Copying only these (not the whole value: a deep copy of 2,002 documents
 * was most of a watch step's load) relies on the checks writing nothing else; the watch's cache
 * (cache.ts) freezes what it keeps, so a write anywhere else fails loudly there, in its tests.
 */
function writableValue(data: Entry['data']): Entry['data'] {
  if (!isPlainObject(data)) return data;
  const spec = data.spec;
  if (!isPlainObject(spec)) return { ...data };
  const ci = spec.cloudInit;
  const disks = spec.disks;
  return {
    ...data,
    spec: {
      ...spec,
      ...(isPlainObject(ci) ? { cloudInit: { ...ci } } : {}),
      ...(Array.isArray(disks) ? { disks: disks.map((d: unknown) => (isPlainObject(d) ? { ...d } : d)) } : {}),
    },
  } as Entry['data'];
}

function isHostEntry(e: Entry | HostEntry): e is HostEntry {
  return !('kind' in e);
}

/**
 * The digest of a desired state: of its manifests, and of its Hosts when there are any (so a
 * state without Host manifests keeps the digest it always had).
 */
export function digestState(manifests: AnyManifest[], hosts: readonly HostDefinition[]): string {
  const d = digestManifests(manifests);
  if (hosts.length === 0) return d;
  return createHash('sha256').update(d).update(canonical(hosts.map(({ source: _s, ...h }) => h))).digest('hex');
}

/** Stable JSON: object keys sorted. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isPlainObject(value)) {
    return `{${Object.keys(value)
      .sort()
      .filter((k) => value[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The canonical text of one manifest, kept per spec object: a file the watch's cache did not read
 * again hands over the same objects, whose text is not built again. Manifests are never changed
 * after loading (the cache relies on it too).
 */
const canonicalMemo = new WeakMap<object, { kind: string; metadata: object; text: string }>();

function canonicalManifest(m: AnyManifest): string {
  const key = m.spec as object;
  const memo = typeof key === 'object' && key !== null ? canonicalMemo.get(key) : undefined;
  if (memo && memo.kind === m.kind && memo.metadata === m.metadata) return memo.text;
  const text = canonical({ apiVersion: m.apiVersion, kind: m.kind, metadata: m.metadata, spec: m.spec });
  if (typeof key === 'object' && key !== null) canonicalMemo.set(key, { kind: m.kind, metadata: m.metadata, text });
  return text;
}

/** sha256 over the manifests sorted by kind and name, without source positions. */
export function digestManifests(manifests: AnyManifest[]): string {
  // Sorted by one string per manifest (kind, NUL, name: the same order as by kind then name; no
  // kind or name holds a NUL) compared as plain strings: a comparator reading both manifests'
  // fields cost ~8 ms at 2,002 manifests in a watch step (property reads of frozen objects of
  // many shapes), this ~1 ms.
  const keyed = manifests.map((m) => ({ k: `${m.kind}\u0000${m.metadata.name}`, m }));
  keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  const h = createHash('sha256').update('[');
  for (let i = 0; i < keyed.length; i++) h.update(i === 0 ? canonicalManifest(keyed[i]!.m) : `,${canonicalManifest(keyed[i]!.m)}`);
  return h.update(']').digest('hex');
}

export async function gitInfo(dir: string): Promise<{ gitCommit?: string; gitDirty?: boolean }> {
  // Loaded here: node:child_process (and net, …) is not needed by a load without a revision (validate).
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const execFileAsync = promisify(execFile);
  try {
    const opts = { cwd: dir, timeout: 10_000, env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' } };
    const inside = await execFileAsync('git', ['rev-parse', '--is-inside-work-tree'], opts);
    if (inside.stdout.trim() !== 'true') return {};
    // safe-catch: a repository without commits has no HEAD: no revision to record
    const head = await execFileAsync('git', ['rev-parse', '--verify', '-q', 'HEAD'], opts).catch(() => undefined);
    const commit = head?.stdout.trim();
    if (!commit) return {};
    const status = await execFileAsync('git', ['status', '--porcelain', '--untracked-files=normal', '--', '.'], opts);
    return { gitCommit: commit, gitDirty: status.stdout.trim().length > 0 };
  } catch { // safe-catch: not a git work tree, or git missing: no revision to record
    return {};
  }
}

/**
 * Load and validate every manifest under `dir` (a directory, or a single YAML file).
 * All-or-nothing: any error makes the result `ok: false` with every error found.
 * An empty folder is `ok: true` with zero manifests.
 */
export interface LoadOptions {
  /** The policy every manifest is checked against (`--policy`). */
  policy?: Policy;
  /**
   * A sandbox (a git checkout's root): the folder, every manifest file and every relative path in
   * a manifest (`userDataFile`, a local `source`) must resolve (real path, per file, before it is
   * opened) inside it; anything else is an error naming the file, which is never read. Absolute
   * paths in manifests stay governed by the policy's allowed roots. Without it, the policy's
   * `manifests.confineSymlinks: true` confines a local folder to itself.
   */
  confineTo?: string;
  /** Plan-time limits: the virtual size of a URL image already in the image cache. */
  cachedImageSize?: CachedImageSize;
  /**
   * false: do not ask git for the folder's revision (`gitCommit`, `gitDirty` stay unset): `validate`
   * records nothing and spares the git processes. Default true.
   */
  revision?: boolean;
}

/** The manifests of each kind (the lists of `DesiredState`), in load order. */
export function manifestsByKind(manifests: AnyManifest[]): Pick<DesiredState, 'pools' | 'volumes' | 'networks' | 'vms' | 'snapshots'> {
  return {
    pools: manifests.filter((m): m is StoragePoolManifest => m.kind === 'StoragePool'),
    volumes: manifests.filter((m): m is VolumeManifest => m.kind === 'Volume'),
    networks: manifests.filter((m): m is NetworkManifest => m.kind === 'Network'),
    vms: manifests.filter((m): m is VirtualMachineManifest => m.kind === 'VirtualMachine'),
    snapshots: manifests.filter((m): m is SnapshotManifest => m.kind === 'Snapshot'),
  };
}

/** One manifest file checked on its own: its documents (schema-checked entries) and the file's own errors. */
export interface FileLoad {
  errors: ManifestError[];
  entries: Entry[];
  hostEntries: HostEntry[];
}

/** Parse one file's bytes and check each document on its own (apiVersion, kind, schema); no cross-file rule. */
export function checkFile(file: string, bytes: Buffer): FileLoad {
  const parsed = parseYamlFile(file, bytes);
  const errors: ManifestError[] = [...parsed.errors];
  const entries: Entry[] = [];
  const hostEntries: HostEntry[] = [];
  for (const sd of parsed.docs) {
    const entry = checkDocument(sd, errors);
    if (entry && isHostEntry(entry)) hostEntries.push(entry);
    else if (entry) entries.push(entry);
  }
  return { errors, entries, hostEntries };
}

/**
 * Reads one manifest file (after the sandbox check): the load's per-file step. `loadManifests`
 * reads every file; a caller that keeps files between loads (the watch's per-file cache,
 * `cache.ts`) passes its own.
 */
export type FileReader = (file: string) => FileLoad | Promise<FileLoad>;

/** A manifest file's bytes after the size check, or the file's error. */
export async function readManifestBytes(file: string): Promise<Buffer | FileLoad> {
  try {
    const fst = await stat(file);
    if (fst.size > MAX_FILE_BYTES) {
      return { errors: [{ file, line: 1, col: 1, message: `file is ${fst.size} bytes, larger than the ${MAX_FILE_BYTES}-byte (1 MiB) limit` }], entries: [], hostEntries: [] };
    }
    return await readFile(file);
  } catch (err) {
    return { errors: [{ file, line: 1, col: 1, message: `cannot read file: ${(err as Error).message}` }], entries: [], hostEntries: [] };
  }
}

/** The per-file step without a cache: stat (size limit), read, {@link checkFile}. */
export async function readManifestFile(file: string): Promise<FileLoad> {
  const bytes = await readManifestBytes(file);
  return Buffer.isBuffer(bytes) ? checkFile(file, bytes) : bytes;
}

/** What `loadManifests` takes besides the options: how each file is read, and how the git state is found. */
export interface LoadHooks {
  readFile?: FileReader;
  gitInfo?: (dir: string) => Promise<{ gitCommit?: string; gitDirty?: boolean }>;
}

export async function loadManifests(dir: string, opts: LoadOptions = {}, hooks: LoadHooks = {}): Promise<LoadResult> {
  const st = await stat(dir).catch((err: NodeJS.ErrnoException) => err);
  if (st instanceof Error) {
    const why = st.code === 'ENOENT' ? 'does not exist' : `cannot be read (${st.code ?? st.message})`;
    return { ok: false, errors: [{ file: dir, line: 1, col: 1, message: `manifest directory ${why}` }] };
  }
  let files: string[];
  let gitDir = dir;
  if (st.isDirectory()) {
    try {
      files = (await listYamlFiles(dir)).map((rel) => join(dir, rel));
    } catch (err) {
      return { ok: false, errors: [{ file: dir, line: 1, col: 1, message: `cannot list manifest directory: ${(err as Error).message}` }] };
    }
  } else if (st.isFile()) {
    files = [dir];
    gitDir = join(dir, '..');
  } else {
    return { ok: false, errors: [{ file: dir, line: 1, col: 1, message: 'not a directory or regular file' }] };
  }
  files.sort();
  // The sandbox: a git checkout's root, or (manifests.confineSymlinks) the local folder itself.
  const inRepo = opts.confineTo !== undefined;
  const confineGiven = opts.confineTo ?? (opts.policy?.confineSymlinks ? (st.isFile() ? dirname(dir) : dir) : undefined);
  const sandbox = confineGiven === undefined ? undefined : realPathOf(confineGiven);
  const outside = (p: string): boolean => sandbox !== undefined && !within(realPathOf(p), sandbox);
  const escapes = inRepo ? 'resolves outside the repository checkout (a symlink?): not read' : 'resolves outside the manifest folder (a symlink; manifests.confineSymlinks): not read';
  if (outside(dir)) return { ok: false, errors: [{ file: dir, line: 1, col: 1, message: `manifest folder ${escapes}` }] };

  const errors: ManifestError[] = [];
  const entries: Entry[] = [];
  const hostEntries: HostEntry[] = [];
  const read = hooks.readFile ?? readManifestFile;
  for (const file of files) {
    if (outside(file)) {
      errors.push({ file, line: 1, col: 1, message: `manifest file ${escapes}` });
      continue;
    }
    const got = read(file);
    // A reader that has the file at hand (the watch's cache) answers without a promise: a thousand
    // unchanged files take no thousand turns of the microtask queue.
    const load = got instanceof Promise ? await got : got;
    errors.push(...load.errors);
    // Copies: the checks below set fields on an entry (a probed image, import rules) and fill in
    // its value (writableValue), never on the per-file result a cache keeps (ManifestCache, the
    // load cache): a kept file must load again as it did the first time.
    // A file read here (no reader of the caller's) is kept by nobody: its entries need no copy.
    if (hooks.readFile) for (const e of load.entries) entries.push({ ...e, data: writableValue(e.data) });
    else entries.push(...load.entries);
    hostEntries.push(...load.hostEntries);
  }
  // The policy first: a source path it refuses is never opened (not even to read an image header).
  const refused = opts.policy ? checkPolicy(entries, opts.policy) : [];
  errors.push(...refused);
  // Always, with or without a policy: what reaches the host is denied by default.
  errors.push(...checkExtraDevices(entries, opts.policy));
  const unprobed = new Set(entries.filter((e) => refused.some((x) => x.file === e.sd.file && x.kind === e.kind && x.name === e.name)));
  const confine = sandbox === undefined ? undefined : { inside: (p: string) => !outside(p), what: inRepo ? 'the repository checkout' : 'the manifest folder (manifests.confineSymlinks)' };
  errors.push(...(await checkSemantics(entries, {
    skipSourceProbe: unprobed, ...(confine ? { confine } : {}), ...(opts.cachedImageSize ? { cachedImageSize: opts.cachedImageSize } : {}),
  })));
  const fleet = checkFleet(hostEntries, entries);
  errors.push(...fleet.errors);
  if (opts.policy) {
    const policy = opts.policy;
    for (const e of entries) {
      if (e.valid && e.kind === 'Volume' && typeof specOf(e, 'Volume').source === 'object') {
        e.importRules = { ...(policy.urlHosts ? { urlHosts: policy.urlHosts } : {}), policyFile: policy.file };
      }
    }
    // Limits over the size that will exist: after the semantics, which read local image headers.
    errors.push(...(await checkPolicyLimits(entries, policy, opts.cachedImageSize)));
  }
  if (errors.length > 0) return { ok: false, errors: sortErrors(errors) };

  const manifests: AnyManifest[] = entries.map((e) => {
    const d = e.data as unknown as Omit<AnyManifest, 'source'>;
    return {
      apiVersion: API_VERSION,
      kind: e.kind,
      metadata: d.metadata,
      spec: d.spec,
      source: { file: e.sd.file, line: e.sd.start.line, col: e.sd.start.col },
      ...(e.image ? { image: e.image } : {}),
      ...(e.importRules ? { importRules: e.importRules } : {}),
    } as AnyManifest;
  });
  const desired = {
    dir,
    files,
    manifests,
    ...manifestsByKind(manifests),
    hosts: fleet.hosts,
    ...(opts.revision === false ? {} : await (hooks.gitInfo ?? gitInfo)(gitDir)),
  } as DesiredState;
  // The digest hashes every manifest: computed when first read (validate never reads it).
  let digest: string | undefined;
  Object.defineProperty(desired, 'digest', { enumerable: true, configurable: true, get: () => (digest ??= digestState(manifests, fleet.hosts)) });
  return { ok: true, desired };
}
