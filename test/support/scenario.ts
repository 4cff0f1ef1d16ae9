/**
 * Typed manifest builders for tests: `scenario().pool(...).volume(...).network(...).vm(...)` gives
 * manifest files (YAML text, written the way a user writes them and loaded the way the CLI loads
 * them) with defaults, so a test states only what it is about.
 *
 * Defaults: a pool's path is `/srv/pools/<name>`; a volume lives in the pool added last (or the one
 * named in `.in(pool)`) with 16MiB; a network is isolated on 10.231.0.0/24; a VM has 1 vCPU and
 * 64MiB. Anything given replaces the default; `undefined` leaves a field out. Names are used as
 * given (tests pick them per file; see `names.ts` for the integration suites' allocator).
 *
 *   const s = scenario().pool(`${P}-pool`).volume(`${P}-root`, { capacity: '64MiB' })
 *     .vm(`${P}-vm`, { state: 'running', disks: [{ volume: `${P}-root`, boot: 1 }] });
 *   s.files()            // { 'manifests.yaml': '...' }
 *   await s.desired(dir) // writes the folder, loads it like the CLI, builds the desired state
 */
import { stringify } from 'yaml';
import type {
  ManifestMetadata, NetworkSpec, StoragePoolSpec, VirtualMachineSpec, VolumeMetadata, VolumeSpec,
} from '../../src/manifest/types.generated.js';
import type { Desired } from '../../src/reconcile/desired.js';
import { desiredFrom, writeManifests } from './manifests.js';

export const API = 'virtform.dev/v1';
export const DEFAULT_CIDR = '10.231.0.0/24';

/** Metadata beyond the name (labels, adopt, reconcile, and for volumes onDelete). */
export type Meta = Omit<ManifestMetadata, 'name'>;
export type VolumeMeta = Omit<VolumeMetadata, 'name'>;
/**
 * A spec with every field optional (the builder fills the defaults). Enum values are widened to
 * string and extra keys are allowed, so a test can pass its parameters through and write invalid input.
 */
type Widen<V> = V extends string ? string : V;
type Loose<T> = { [K in keyof T]?: Widen<T[K]> | undefined } & Record<string, unknown>;

/** Meta given as a shorthand: `true` for `{adopt: true}`, `'disabled'` for `{reconcile: disabled}`. */
export type MetaArg<M> = M | 'disabled' | 'adopt' | undefined;

function metaOf<M extends object>(arg: MetaArg<M>): Partial<M> {
  if (arg === 'disabled') return { reconcile: 'disabled' } as unknown as Partial<M>;
  if (arg === 'adopt') return { adopt: true } as unknown as Partial<M>;
  return (arg ?? {}) as Partial<M>;
}

/** Drop keys whose value is undefined, so `{ state: undefined }` leaves a default out. */
function defined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

interface Doc { file: string; text: string }

export class Scenario {
  private readonly docs: Doc[] = [];
  private file = 'manifests.yaml';
  private lastPool: string | undefined;

  /** Documents added from now on go to this file of the folder (default `manifests.yaml`). */
  in(file: string): this {
    this.file = file;
    return this;
  }

  /** Any manifest document, as YAML text or as an object (for kinds or shapes the builders do not cover). */
  doc(doc: string | Record<string, unknown>): this {
    this.docs.push({ file: this.file, text: typeof doc === 'string' ? doc.trim() : stringify(doc, { lineWidth: 0 }).trim() });
    return this;
  }

  /** A manifest of `kind` with a spec (no defaults). */
  manifest(kind: string, name: string, spec: Record<string, unknown> | undefined, meta: Record<string, unknown> = {}): this {
    const metadata = defined({ name, ...meta });
    return this.doc(spec === undefined ? { apiVersion: API, kind, metadata } : { apiVersion: API, kind, metadata, spec: defined(spec) });
  }

  pool(name: string, spec: Loose<StoragePoolSpec> = {}, meta?: MetaArg<Meta>): this {
    this.lastPool = name;
    return this.manifest('StoragePool', name, { path: `/srv/pools/${name}`, ...spec }, metaOf(meta));
  }

  volume(name: string, spec: Loose<VolumeSpec> = {}, meta?: MetaArg<VolumeMeta>): this {
    const pool = spec.pool ?? this.lastPool;
    if (pool === undefined) throw new Error(`scenario: volume ${name} needs a pool (add one first or give spec.pool)`);
    return this.manifest('Volume', name, { pool, capacity: '16MiB', ...spec }, metaOf(meta));
  }

  network(name: string, spec: Loose<NetworkSpec> = {}, meta?: MetaArg<Meta>): this {
    return this.manifest('Network', name, { mode: 'isolated', cidr: DEFAULT_CIDR, ...spec }, metaOf(meta));
  }

  vm(name: string, spec: Loose<VirtualMachineSpec> = {}, meta?: MetaArg<Meta>): this {
    return this.manifest('VirtualMachine', name, { vcpus: 1, memory: '64MiB', ...spec }, metaOf(meta));
  }

  /** The manifest folder's files: name → YAML text (documents separated by `---`). */
  files(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const d of this.docs) out[d.file] = out[d.file] === undefined ? `${d.text}\n` : `${out[d.file]}---\n${d.text}\n`;
    return out;
  }

  /** All documents as one YAML stream. */
  yaml(): string {
    return this.docs.map((d) => `${d.text}\n`).join('---\n');
  }

  /** Write the folder `dir` (replacing what was there); returns it. */
  write(dir: string): string {
    return writeManifests(dir, this.files());
  }

  /** Write the folder `dir`, load it like the CLI does and build the desired state. */
  async desired(dir: string): Promise<Desired> {
    return desiredFrom(this.write(dir));
  }
}

export function scenario(): Scenario {
  return new Scenario();
}

/** The files of a scenario, or files given as they are. */
export type Manifests = Scenario | Record<string, string>;

export function filesOf(m: Manifests): Record<string, string> {
  return m instanceof Scenario ? m.files() : m;
}
