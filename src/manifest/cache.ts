/**
 * A per-file cache of manifest loads, for a process that loads the same folder again and again
 * (`virtform watch`): a file whose path, size, inode, mtime and ctime (sub-microsecond) are what they
 * were is not read again; a file whose bytes hash to what they were is not parsed again. Either
 * way its documents' own checks (apiVersion, kind, schema) are reused; the cross-file checks
 * (names, references, address plans, policy) still run over the whole set at every load, in
 * `loadManifests`, exactly as without the cache, and every error keeps its file:line:col.
 *
 * What the cache cannot see (a file rewritten in place within one clock tick to the same size) is
 * seen by the next {@link ManifestCache.clear} (the watch clears it at every full read, `--resync`).
 * Whether the folder is a git work tree is remembered the same way (a folder that is not one is
 * not asked again until the next clear; one that is is asked at every load: its dirty state moves
 * with every edit).
 *
 * A manifest equal (deep, its source position included) to the one of the same kind and name the
 * last load returned is handed out as that same object: what is computed per manifest object (the
 * digest's canonical text, the watch's desired resources: `rebuildDesired`) is not computed again.
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { MAX_FILE_BYTES } from './yaml-source.js';
import { checkFile, digestState, gitInfo, loadManifests, manifestsByKind, type FileLoad, type LoadOptions, type LoadResult } from './loader.js';
import type { AnyManifest, DesiredState } from './model.js';

interface Cached {
  /** size, inode, mtime and ctime (milliseconds as doubles: to ~0.25 µs at today's dates). */
  stamp: string;
  sha256: string;
  load: FileLoad;
}

/** What one load did: files listed, read again (stamp changed) and parsed again (bytes changed). */
export interface CacheLoadStats {
  files: number;
  read: number;
  parsed: number;
}

/**
 * Deep equality of two loaded manifests (JSON-like values: plain objects, arrays, primitives;
 * key order ignored). A value of another class (never in a loaded manifest) is equal only to itself.
 */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const pa = Object.getPrototypeOf(a) as unknown;
  if ((pa !== Object.prototype && pa !== null) || Object.getPrototypeOf(b) !== pa) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

function deepFreeze(v: unknown): void {
  if (typeof v !== 'object' || v === null || Object.isFrozen(v)) return;
  Object.freeze(v);
  for (const x of Object.values(v)) deepFreeze(x);
}

export class ManifestCache {
  #files = new Map<string, Cached>();
  /** Folders known not to be git work trees (until the next clear). */
  #notGit = new Set<string>();
  /** The manifests the last successful load returned, by kind and name. */
  #manifests = new Map<string, AnyManifest>();
  /** The git state of the last load, reused while no file changed. */
  #git: { dir: string; info: { gitCommit?: string; gitDirty?: boolean } } | undefined;

  /** Forget everything: the next load reads, parses and checks every file again. */
  clear(): void {
    this.#files.clear();
    this.#notGit.clear();
    this.#git = undefined;
    this.#manifests.clear();
  }

  /** Number of files held. */
  get size(): number {
    return this.#files.size;
  }

  /** `loadManifests(dir, opts)`, with unchanged files taken from the cache. */
  async load(dir: string, opts: LoadOptions = {}): Promise<LoadResult & { stats: CacheLoadStats }> {
    const stats: CacheLoadStats = { files: 0, read: 0, parsed: 0 };
    const seen = new Set<string>();
    const before = new Set(this.#files.keys());
    const result = await loadManifests(dir, opts, {
      readFile: (file) => {
        stats.files += 1;
        seen.add(file);
        return this.#read(file, stats);
      },
      gitInfo: async (gitDir) => {
        if (this.#notGit.has(gitDir)) return {};
        // No file read again and the same files: the work tree's state is what it was (a commit
        // that changes no manifest file is recorded from the next change or full read on).
        const same = stats.read === 0 && seen.size === before.size && [...seen].every((f) => before.has(f));
        if (same && this.#git?.dir === gitDir) return this.#git.info;
        const info = await gitInfo(gitDir);
        if (info.gitCommit === undefined) this.#notGit.add(gitDir);
        this.#git = { dir: gitDir, info };
        return info;
      },
    });
    // Files gone from the folder (deleted, renamed) are forgotten.
    for (const file of this.#files.keys()) if (!seen.has(file)) this.#files.delete(file);
    if (result.ok) result.desired = this.#keepUnchanged(result.desired);
    return { ...result, stats };
  }

  /** `state` with each manifest equal to the last load's of its kind and name replaced by that object. */
  #keepUnchanged(state: DesiredState): DesiredState {
    const key = (m: AnyManifest): string => `${m.kind}/${m.metadata.name}`;
    const prev = this.#manifests;
    let kept = 0;
    const manifests = state.manifests.map((m) => {
      const p = prev.get(key(m));
      if (p === undefined || !sameValue(p, m)) return m;
      kept += 1;
      return p;
    });
    this.#manifests = new Map(manifests.map((m) => [key(m), m]));
    if (kept === 0) return state;
    // Every field but the digest (a getter over every manifest: not evaluated here) and the lists.
    const next = {} as Record<string, unknown>;
    for (const k of Object.keys(state)) if (k !== 'digest') next[k] = (state as unknown as Record<string, unknown>)[k];
    Object.assign(next, { manifests }, manifestsByKind(manifests));
    let digest: string | undefined;
    Object.defineProperty(next, 'digest', { enumerable: true, configurable: true, get: () => (digest ??= digestState(manifests, state.hosts)) });
    return next as unknown as DesiredState;
  }

  /** A kept file whose stamp is unchanged: its load, without a turn of the event loop; otherwise read it. */
  #read(file: string, stats: CacheLoadStats): FileLoad | Promise<FileLoad> {
    let stamp: string;
    try {
      // Synchronous: a thousand unchanged files cost a few milliseconds this way, where as many
      // awaited stats each wait for a turn of the thread pool and of the event loop.
      // Numbers, not bigint: a fourth of the cost for a thousand files; the times keep ~0.25 µs
      // (a double of today's milliseconds), far below the time a rewrite of a file takes.
      const st = statSync(file);
      if (st.size > MAX_FILE_BYTES) return this.#fail(file, `file is ${st.size} bytes, larger than the ${MAX_FILE_BYTES}-byte (1 MiB) limit`);
      stamp = `${st.size}:${st.ino}:${st.mtimeMs}:${st.ctimeMs}`;
    } catch (err) {
      return this.#fail(file, `cannot read file: ${(err as Error).message}`);
    }
    const cached = this.#files.get(file);
    if (cached && cached.stamp === stamp) return cached.load;
    return this.#readAgain(file, stamp, stats);
  }

  #fail(file: string, message: string): FileLoad {
    this.#files.delete(file);
    return { errors: [{ file, line: 1, col: 1, message }], entries: [], hostEntries: [] };
  }

  async #readAgain(file: string, stamp: string, stats: CacheLoadStats): Promise<FileLoad> {
    stats.read += 1;
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (err) {
      return this.#fail(file, `cannot read file: ${(err as Error).message}`);
    }
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const cached = this.#files.get(file);
    if (cached && cached.sha256 === sha256) {
      cached.stamp = stamp;
      return cached.load;
    }
    stats.parsed += 1;
    const load = checkFile(file, bytes);
    // Kept and handed to every later load: frozen, so that nothing writes into it (the loader
    // copies what its checks fill in: writableValue in loader.ts).
    for (const e of [...load.entries, ...load.hostEntries]) deepFreeze(e.data);
    this.#files.set(file, { stamp, sha256, load });
    return load;
  }
}
