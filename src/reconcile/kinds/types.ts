/**
 * The contract of a resource kind. Everything virtform knows about one kind lives in that kind's
 * module (`pool.ts`, `volume.ts`, `network.ts`, `vm.ts`), which implements {@link KindHandler}:
 * normalization of its manifests, identity and ownership of its observed objects, dependencies,
 * the diff (driven by a per-field spec), the steps it executes, and its status columns. The
 * generic stages (`desired.ts`, `diff.ts`, `plan.ts`, `apply.ts`, `ownership.ts`) only dispatch.
 */
import type { DesiredState } from '../../manifest/index.js';
import type { ResourceKind } from '../../model/kinds.js';
import type { VolumeFormat } from '../../model/definitions.js';
import type { HostPort, HostSnapshot } from '../ports.js';
import type { Observed } from '../observe.js';
import type { DataLoss, DiffContext, DiffOptions, FieldChange, ResourceChange } from '../change.js';
import type { Desired } from '../desired.js';
import type { PlanStep } from '../plan.js';
import type { JournalEntry, StoredReference } from '../../state/index.js';

export type { StoredReference };
import type { ImageCache, ImageProgress } from '../images.js';

/** Cross-kind lookups while normalizing manifests (volume paths need pool paths, disks need volumes). */
export interface BuildContext {
  host: string;
  poolPath(pool: string): string;
  volumePath(volume: string): string;
  volumeFormat(volume: string): VolumeFormat;
}

/** Where to find an object whose identity needs more than its name (a volume: its pool and file). */
export interface Locator {
  /** The desired or recorded config. */
  config?: unknown;
  /** Intents of the journal entries that name the resource. */
  intents?: Record<string, unknown>[];
}

/** How a change of one field takes effect. */
export type ChangeEffect = 'live' | 'restart' | 'replace';

/** One field of a kind's config, as the diff treats it. */
export interface FieldSpec<C> {
  /** Field of the normalized config. */
  field: keyof C & string;
  /** Where the user writes it in a manifest. */
  manifest: string;
  /** Unit of the normalized value, where it has one. */
  unit?: 'bytes' | 'KiB';
  /** How a change takes effect: applied live, on the next boot, or by recreating the object. */
  effect: ChangeEffect | ((before: unknown, after: unknown, whole?: unknown) => ChangeEffect);
  /**
   * The plan lines of a difference, `before` the host's (default: the field's value flattened into
   * `spec.<field>.…` lines, sorted); none: no difference.
   */
  lines?(before: unknown, after: unknown): FieldChange[];
}

/**
 * Exact drift of a kind whose objects have an XML definition (domains, networks, pools): after
 * every write apply records libvirt's inactive XML as the object's baseline; diff names what
 * differs from it (`exactDrift` in `change.ts`).
 */
export interface ExactSpec {
  /** Which definition `HostPort.inactiveXml` reads. */
  object: 'domain' | 'network' | 'pool';
  /** XML paths libvirt changes on its own (measured): never drift. */
  ignore: readonly RegExp[];
  /** XML paths the field-level comparison explains (left to its lines when it found a difference). */
  modelled: readonly RegExp[];
}

/** What a step's execution gets from apply. */
export interface ExecContext<R> {
  host: HostPort;
  step: PlanStep;
  /** The desired resource of the step's key (absent for deletes of undeclared resources). */
  desired: R | undefined;
  observed: Observed;
  attempt: number;
  /** The step belongs to a replace (the object is recreated: no UUID is kept). */
  replacing: boolean;
  shutdownTimeoutMs?: number;
  /** Journal boundary after the host calls (crash-test hook). */
  boundary(): void;
  /** Record the resource as applied. `config: true` records the desired config and spec hash. */
  record(fields: {
    uuid?: string | null; observedStatus: string; desiredState?: string | null; config?: boolean;
    /** Merged into `details.facts` (kept across records); a null value removes that fact. */
    facts?: Record<string, unknown>;
  }): Promise<void>;
  /** Delete the record when no manifest declares the resource any more. */
  forgetIfUndeclared(): Promise<void>;
  /**
   * Paths on the host this resource's steps created (kept in the state DB apart from the record,
   * so they survive its deletion and a crash before it): what deleting the resource may remove.
   */
  createdPaths: {
    list(): Promise<string[]>;
    add(paths: string[]): Promise<void>;
    remove(paths: string[]): Promise<void>;
  };
  /** A line the output shows under the step (something kept, and why). */
  note?(text: string): void;
  /** Where downloaded images are cached (a default temp-dir cache when absent). */
  images?: ImageCache;
  /** Progress of a long step (an image download or upload). */
  progress?(p: ImageProgress): void;
}

/** What a kind's data rule may ask besides the plan. */
export interface DataRuleContext {
  desired: Desired;
  observed: Observed;
  /** Absent: only what observe already read is used (unit tests of the rule itself). */
  host?: HostPort;
  /** References recorded by earlier runs, for these paths. */
  recorded?: (paths: string[]) => Promise<StoredReference[]>;
}

/** What the host showed, for the status columns. */
export interface StatusView {
  snapshot: HostSnapshot;
  /** Keys (file paths) of the volumes listed in the active pools that were asked. */
  volumeKeys: Set<string>;
  /** `pool/name` of the same volumes. */
  volumeNames: Set<string>;
  /** Paths of the pools whose volumes were listed (a file of such a folder missing from `volumeKeys` is gone). */
  listedPoolPaths?: Set<string>;
  /** Running VMs with graphics: type, listen address and the port libvirt picked, by VM name. */
  graphics?: Map<string, { type: string; listen?: string; port?: number }[]>;
}

export interface KindHandler<R extends { kind: ResourceKind; name: string; key: string } = never, O extends { op: string } = never> {
  readonly kind: ResourceKind;
  /**
   * Labels of this kind's step operations, and which of them tear down. `afterUsersStop`: a
   * build-up step that runs after the resources using this one are stopped in the same plan.
   */
  readonly ops: { readonly [K in O['op']]: { label: string; teardown: boolean; afterUsersStop?: boolean } };
  /** Exact drift: the kind's objects get baselines and are compared with them (absent: fields only). */
  readonly exact?: ExactSpec;
  /** Per-field spec of the config: manifest name, unit, and how a change takes effect. */
  readonly fields: readonly FieldSpec<R extends { config: infer C } ? C : never>[];

  /** Normalize this kind's manifests into desired resources. */
  build(state: DesiredState, ctx: BuildContext): R[];
  /** Keys of the resources this one depends on (ordering, skipping dependents, blocking). */
  dependencies(r: R): string[];
  /** Dependencies named by a config recorded at an earlier apply (for deletes and replaces). */
  recordedDependencies(previous: unknown): string[];

  /** libvirt identity of the observed object (a UUID; a volume's key), or undefined when absent. */
  identity(observed: Observed, name: string, where: Locator): string | undefined;
  /** Pools whose volumes observe must list for a desired resource, a record or a journal entry. */
  poolsToList?(from: { desired?: R; recordName?: string; journal?: JournalEntry }): string[];

  /**
   * Read the persistent definitions of this kind's objects that exist on the host, for the
   * resources in `wanted` (declared, recorded or named by the journal), by resource key. Diff
   * compares them with the desired state: this is how changes made outside virtform are seen.
   */
  readDefinitions(host: HostPort, observed: Observed, wanted: Map<string, { name: string; where: Locator }>): Promise<Map<string, unknown>>;

  /** Whether diff checks this resource against the host's domain capabilities (observe reads them once for all). */
  needsDomainCapabilities?(r: R): boolean;
  diff(r: R, ctx: DiffContext): ResourceChange | undefined;
  /** Notes for the plan about a resource that needs no change (e.g. a VM still waiting for a restart). */
  notices?(r: R, ctx: DiffContext): string[];
  /** Adjust other kinds' changes once every resource has been diffed (e.g. restart VMs whose disk is replaced). */
  afterDiff?(desired: R[], observed: Observed, changes: ResourceChange[], opts: DiffOptions): void;
  /**
   * The data rule of this kind: for its changes that would destroy an object's contents, what
   * would be lost (by resource key); what is derived or pristine is left out. `safety.ts` holds
   * what is returned unless the run consents. Asks the host only when some change destroys something.
   */
  dataLoss?(changes: ResourceChange[], ctx: DataRuleContext): Promise<Map<string, DataLoss>>;
  /** Uses of files this run saw on the host, for the state DB to remember (so a later run still knows them). */
  referencesSeen?(observed: Observed): StoredReference[];
  /** The default mass-deletion brake refuses a plan deleting every owned object of this kind (at least two). */
  readonly brakeOnWipe?: boolean;
  /** Notes for the plan about deleting an owned object (e.g. a running VM is forced off). */
  deleteNotes?(name: string, observed: Observed, opts?: DiffOptions): string[];
  /** Steps that delete an owned object no manifest declares; undefined when it cannot be located. */
  deleteSteps(name: string, where: Locator, opts?: DiffOptions): O[] | undefined;
  /**
   * An owned object no manifest declares that is to be kept rather than deleted (a volume recorded
   * with `deletionPolicy: Retain`): what stays. Its record is forgotten instead; undefined deletes.
   */
  release?(name: string, where: Locator): { policy: 'Retain' | 'Suspended'; kept: string } | undefined;

  /** What the journal keeps about a step so that a later run can find and finish or clean it. */
  intent(op: O, desired: R | undefined): Record<string, unknown>;
  /** Carry out one step on the host; idempotent. */
  execute(op: O, ctx: ExecContext<R>): Promise<void>;

  /** Status columns: what the manifest asks for, and what the host shows. */
  desiredStatus(r: R): string;
  /** What a record of this kind asked for when neither the manifest nor the record says. */
  readonly defaultDesiredStatus: string;
  /**
   * A note the status shows beside the row (VMs: "restart required for …" while the running
   * domain lags its persistent definition); `view` is undefined when the host was not asked.
   */
  statusNote?(view: StatusView | undefined, r: { name: string; facts: unknown; config?: unknown }): { flag: string; text: string; data: unknown } | undefined;
  /** What the host shows of the object; `uuid` is the recorded identity (null when none), `config` the desired or recorded one. */
  observedStatus(view: StatusView, r: { name: string; uuid: string | null; config: unknown }): string;
}
