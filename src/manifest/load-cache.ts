/**
 * The load cache (issue 22): a file next to the state DB (in the data dir) that keeps, across
 * processes, what the per-file step of a load (`checkFile`: YAML parse, apiVersion, kind, schema
 * with its defaults) made of each manifest file, by the sha256 of the file's bytes, and the desired
 * state's digest by the files' paths and sha256. A file whose bytes hash to a kept value is not
 * parsed: its documents' values are taken from the cache, their positions parsed from the bytes at
 * their first use (only a file with an error needs them). Everything else of a load runs as without
 * the cache, at every load: every file is listed and read, and the cross-file checks (names,
 * references, address plans, policy, local image files, extra devices) run over the whole set, so
 * what lives outside the manifest files is never taken from the cache.
 *
 * Never trusted over the files: an entry is used only for the same bytes (sha256), written by the
 * same build (the cache's identity: {@link LOAD_CACHE_FORMAT}, the module's URL — in the bundled CLI
 * its chunk's name, which carries esbuild's hash of its content — and the schemas' digest); a cache
 * that is missing, unreadable, of another identity, or whose content does not hash to its recorded
 * checksum (a torn or edited file) is ignored as a whole. Only files that loaded without an error
 * are kept. Written (atomically: a temporary file renamed) only by a caller that asks (`write`:
 * not a dry-run, which writes nothing) and only when the folder exists.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { HostEntry } from './hosts.js';
import { checkFile, loadManifests, readManifestBytes, type FileLoad, type LoadOptions, type LoadResult } from './loader.js';
import type { AnyManifest, ManifestKind } from './model.js';
import { SCHEMA_DIR } from './schema.js';
import type { Entry } from './semantics.js';
import { restoredDocs, type Position } from './yaml-source.js';

/** Bump when what the per-file step makes of a file changes in a way the identity does not see. */
export const LOAD_CACHE_FORMAT = 1;

/** The cache's file name in the data dir. */
export const LOAD_CACHE_FILE = 'manifest-cache.json';

/** One document of a cached file: where it starts, what it is, its value after the schema's defaults. */
interface CachedDoc {
  start: Position;
  kind: ManifestKind;
  name?: string;
  value: unknown;
}

interface CacheBody {
  identity: string;
  /** By the sha256 of a file's bytes. */
  files: Record<string, CachedDoc[]>;
  /** The desired state's digest, by {@link stateKey} of the files it was loaded from. */
  digest?: { key: string; value: string };
}

/** What one load took from the cache. */
export interface LoadCacheStats {
  /** Manifest files read. */
  files: number;
  /** Files whose documents came from the cache (not parsed). */
  cached: number;
  /** Whether the digest came from the cache. */
  digest: boolean;
  /** Whether the cache was written. */
  written: boolean;
  /** Why an existing cache was not used as a whole (other identity, bad checksum, unreadable). */
  ignored?: string;
}

export interface LoadCacheOptions {
  /** The cache file (e.g. `<data dir>/manifest-cache.json`). */
  file: string;
  /** Write the cache after a load that parsed something (false: a dry-run). */
  write: boolean;
}

let identityMemo: string | undefined;

/** The build the cache belongs to: format, this module's URL, the schemas' bytes. */
function cacheIdentity(): string {
  if (identityMemo) return identityMemo;
  const h = createHash('sha256').update(`${LOAD_CACHE_FORMAT}\n${import.meta.url}\n`);
  for (const f of readdirSync(SCHEMA_DIR).filter((x) => x.endsWith('.json')).sort()) {
    h.update(`${f}\n`).update(readFileSync(`${SCHEMA_DIR}${f}`)).update('\n');
  }
  return (identityMemo = h.digest('hex'));
}

/** The cache's body, or why it is not used (undefined reason: there is none). */
function readCache(file: string): { body?: CacheBody; ignored?: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? {} : { ignored: `unreadable (${code ?? (err as Error).message})` };
  }
  // Line 1: the checksum of the rest; the rest: the body.
  const nl = text.indexOf('\n');
  const body = nl < 0 ? '' : text.slice(nl + 1);
  if (nl < 0 || createHash('sha256').update(body).digest('hex') !== text.slice(0, nl)) return { ignored: 'checksum mismatch' };
  let parsed: CacheBody;
  try {
    parsed = JSON.parse(body) as CacheBody;
  } catch { // safe-catch: reported as the reason the cache is ignored
    return { ignored: 'not JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null || typeof parsed.files !== 'object' || parsed.files === null) return { ignored: 'not a cache' };
  if (parsed.identity !== cacheIdentity()) return { ignored: 'another build' };
  return { body: parsed };
}

function writeCache(file: string, body: CacheBody): boolean {
  if (!existsSync(dirname(file))) return false;
  const text = JSON.stringify(body);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, `${createHash('sha256').update(text).digest('hex')}\n${text}`, { mode: 0o600 });
    renameSync(tmp, file);
    return true;
  } catch { // safe-catch: the cache only saves time; a folder that takes no file leaves every load parsing, as without it
    rmSync(tmp, { force: true });
    return false;
  }
}

/** The documents of a file that loaded without an error, as the cache keeps them; undefined otherwise. */
function toCached(load: FileLoad): CachedDoc[] | undefined {
  if (load.errors.length > 0) return undefined;
  const all: (Entry | HostEntry)[] = [...load.entries, ...load.hostEntries];
  if (all.some((e) => !e.valid)) return undefined;
  const docs: CachedDoc[] = [];
  for (const e of all) {
    const kind: ManifestKind = 'kind' in e ? e.kind : 'Host';
    // The per-file result as parsed: the load's later checks work on copies (loader.ts).
    docs[e.sd.index] = { start: e.sd.start, kind, ...(e.name !== undefined ? { name: e.name } : {}), value: e.data };
  }
  // Every document made an entry (an error would have been reported): no gap.
  return docs.length === all.length && !docs.includes(undefined as unknown as CachedDoc) ? docs : undefined;
}

/** A file's load from its cached documents, positions parsed from `bytes` at their first use. */
function fromCached(file: string, bytes: Buffer, docs: CachedDoc[]): FileLoad {
  const sds = restoredDocs(file, bytes, docs.map((d) => d.start));
  const load: FileLoad = { errors: [], entries: [], hostEntries: [] };
  docs.forEach((d, i) => {
    const base = { sd: sds[i]!, ...(d.name !== undefined ? { name: d.name } : {}), valid: true };
    // The load's later checks fill in values on a copy of it (loader.ts), so the cache's own
    // entry is written back as the file was.
    const data = d.value;
    if (d.kind === 'Host') load.hostEntries.push({ ...base, data: data as HostEntry['data'] });
    else load.entries.push({ ...base, kind: d.kind, data: data as Entry['data'] });
  });
  return load;
}

/**
 * The key of a desired state's digest: every file's path and sha256, in load order, and what the
 * load read into the manifests' values from outside them — a `userDataFile`'s text, which the
 * cross-file step puts in `spec.cloudInit.userData` (the only such read: src/manifest/semantics.ts).
 * Without it an edit of a user-data file alone would keep the old digest.
 */
function stateKey(files: readonly string[], manifests: readonly AnyManifest[]): string {
  const h = createHash('sha256').update(files.join('\n'));
  for (const m of manifests) {
    const ci = (m.spec as { cloudInit?: { userDataFile?: unknown; userData?: unknown } }).cloudInit;
    if (typeof ci?.userDataFile === 'string') h.update(`\n${m.kind}/${m.metadata.name}\0${ci.userDataFile}\0`).update(String(ci.userData ?? ''));
  }
  return h.digest('hex');
}

/**
 * `loadManifests(dir, opts)` with the load cache of `cache.file`: the same result, errors and
 * positions included (test/unit/manifest/load-cache.test.ts compares them), parsing only files
 * whose bytes the cache does not hold.
 */
export async function loadManifestsCached(dir: string, opts: LoadOptions, cache: LoadCacheOptions): Promise<LoadResult & { cacheStats: LoadCacheStats }> {
  const { body, ignored } = readCache(cache.file);
  const stats: LoadCacheStats = { files: 0, cached: 0, digest: false, written: false, ...(ignored ? { ignored } : {}) };
  const kept: Record<string, CachedDoc[]> = {};
  const fileKeys: string[] = [];
  let parsed = false;
  const result = await loadManifests(dir, opts, {
    readFile: async (file) => {
      stats.files += 1;
      const bytes = await readManifestBytes(file);
      if (!Buffer.isBuffer(bytes)) return bytes;
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      fileKeys.push(`${file}\0${sha256}`);
      const hit = body?.files[sha256];
      if (Array.isArray(hit)) {
        stats.cached += 1;
        kept[sha256] = hit;
        return fromCached(file, bytes, hit);
      }
      parsed = true;
      const load = checkFile(file, bytes);
      const docs = toCached(load);
      if (docs) kept[sha256] = docs;
      return load;
    },
  });
  if (!result.ok) return { ...result, cacheStats: stats };
  const desired = result.desired;
  const key = stateKey(fileKeys, desired.manifests);
  if (body?.digest?.key === key && typeof body.digest.value === 'string') {
    const value = body.digest.value;
    Object.defineProperty(desired, 'digest', { enumerable: true, configurable: true, value });
    stats.digest = true;
  }
  const stale = parsed || !stats.digest || Object.keys(kept).length !== Object.keys(body?.files ?? {}).length;
  if (cache.write && stale) {
    stats.written = writeCache(cache.file, { identity: cacheIdentity(), files: kept, digest: { key, value: desired.digest } });
  }
  return { ...result, cacheStats: stats };
}
