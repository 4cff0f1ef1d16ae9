/**
 * The contract of a resource kind. Everything virtform knows about one kind lives in that kind's
 * folder (`kinds/pool/`, `kinds/volume/`, `kinds/network/`, `kinds/vm/`), which implements
 * {@link KindHandler}: normalization of its manifests, identity and ownership of its observed
 * objects, dependencies, the diff (driven by a per-field spec), the steps it executes, and its
 * status columns. The registry (`kinds/index.ts`) implements {@link KindRegistry}; the generic
 * stages (`desired.ts`, `observe.ts`, `diff.ts`, `plan.ts`, `apply.ts`, `safety.ts`) only dispatch.
 * Imports nothing above the core: no kind, no registry, no stage.
 */
import type { DesiredState } from '../../manifest/index.js';
import type { HostId, ResourceKind } from '../../model/kinds.js';
import type { VolumeFormat } from '../../model/definitions.js';
import type { HostPort, HostSnapshot } from '../ports.js';
import type { Definition, Observed } from './observed.js';
import type { DataLoss, DiffContext, DiffOptions, ExactSpec, FieldSpec, PlanStep, ResourceChange, StepOpBase } from './change.js';

export type { ChangeEffect, ExactSpec, FieldSpec } from './change.js';
import type { AnyDesired, Desired } from './resource.js';
import type { JournalEntry, StoredReference } from '../../state/index.js';

export type { StoredReference };
import type { ImageCache, ImageProgress } from '../images.js';

/**
 * Cross-kind lookups while normalizing manifests (volume paths need pool paths, disks need
 * volumes). Each lookup is provided by the kind that knows (`KindHandler.lookups`).
 */
export interface BuildContext {
  host: string;
  /**
   * The domain type the host's Host manifest asks for (`spec.domainType` kvm or qemu): a VM without
   * its own `spec.domainType` gets it (it wins over `--domain-type`). Absent: no Host says.
   */
  domainType?: 'kvm' | 'qemu';
  poolPath(pool: string): string;
  volumePath(volume: string): string;
  volumeFormat(volume: string): VolumeFormat;
}

/** Where to find an object whose identity needs more than its name (a volume: its pool and file). */
/**
 * A resource observe wants the definition of: its object's name, where to find it, and `known`:
 * the sha256 of bytes an earlier run compared without a difference under the same inputs (the
 * no-op fast path, `checks.ts`): a kind that supports it reads the object's definition unparsed
 * when its bytes still hash to that (`Observed.unparsed`). Computed when asked, i.e. when the
 * definition arrives (the digest of the comparison's inputs, ~10 µs a resource, is then spent
 * while libvirtd works on the other reads, not before the first read goes out); undefined: none.
 */
export interface Wanted {
  name: string;
  where: Locator;
  known?: () => string | undefined;
}

export interface Locator {
  /** The desired or recorded config. */
  config?: unknown;
  /** Intents of the journal entries that name the resource. */
  intents?: Record<string, unknown>[];
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
  /** Hot-plug (issue 24): how long the guest gets to complete a live detach (`--detach-timeout`; absent: the kind's default). */
  detachTimeoutMs?: number;
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
  /** Progress of a long step (an image download or upload, a move's copy). */
  progress?(p: ImageProgress): void;
  /** Another host of the run by id (a move's source, for the copy); undefined when the run has no such host. */
  peer?(host: HostId): HostPort | undefined;
  /** The record's `details.facts` as the store has them now (written by an earlier step of this run too). */
  facts?(): Promise<Record<string, unknown>>;
  /** Another resource's record facts as the store has them now (`{}` without facts); undefined when it has no record. */
  factsOf?(key: string): Promise<Record<string, unknown> | undefined>;
  /** `--move-bandwidth`: most bytes per second a move's copy sends (absent: unlimited). */
  moveBandwidth?: number;
}

/** What a kind's move hook gets (`KindHandler.move`): one resource recorded on `from`, declared on `to`. */
export interface MoveContext<R> {
  name: string;
  /** The prune's delete of the recorded object on the source host. */
  source: ResourceChange;
  /** The target's change from its own diff (undefined: nothing to do there, e.g. already copied and verified). */
  target: ResourceChange | undefined;
  desired: R;
  from: Observed;
  to: Observed;
  /** Keys (on the source host) of every resource moving from it in this plan. */
  moving: ReadonlySet<string>;
  /** Keys (on the source host) of the resources there that use this one (declared there, or recorded as using it). */
  usersOnSource: string[];
  /** The whole desired state (what else is declared on either host). */
  all: Desired;
  opts: DiffOptions;
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

/**
 * A step operation's label and ordering. `move`: its part in a cold move (plan.ts orders it):
 * `quiesce` (a source's step that stops what uses the data: runs before the copy), `transfer` (a
 * target's step that reads the source: after the quiesce steps of the source's users).
 */
export interface OpInfo { label: string; teardown: boolean; afterUsersStop?: boolean; move?: 'quiesce' | 'transfer' }

export interface KindHandler<R extends AnyDesired = never, O extends StepOpBase = never> {
  readonly kind: ResourceKind;
  /**
   * Labels of this kind's step operations, and which of them tear down. `afterUsersStop`: a
   * build-up step that runs after the resources using this one are stopped in the same plan.
   */
  readonly ops: { readonly [K in O['op']]: OpInfo };
  /** Exact drift: the kind's objects get baselines and are compared with them (absent: fields only). */
  readonly exact?: ExactSpec;
  /** Per-field spec of the config: manifest name, unit, and how a change takes effect. */
  readonly fields: readonly FieldSpec<R extends { config: infer C } ? C : never>[];

  /**
   * Normalize this kind's manifests into desired resources: one per manifest, in their order, made
   * from that manifest and `ctx` alone. A kind whose build reads other manifests of the state
   * answers lookups (its resources are then built again whenever one of its manifests changes:
   * `rebuildDesired` in desired.ts, the watch's incremental step).
   */
  build(state: DesiredState, ctx: BuildContext): R[];
  /**
   * The lookups of `BuildContext` this kind answers (the pool kind: `poolPath`; the volume kind:
   * `volumePath`, `volumeFormat`), from the validated manifests; `ctx` is the whole context, for
   * lookups that need another kind's.
   */
  lookups?(state: DesiredState, ctx: BuildContext): Partial<Omit<BuildContext, 'host'>>;
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
  readDefinitions(host: HostPort, observed: Observed, wanted: Map<string, Wanted>): Promise<Map<string, Definition>>;
  /**
   * This kind's reads look its objects up in `observed.volumes`: observe starts them once the
   * pools' volume listings are in (a directory refresh each); the other kinds' reads go out first.
   */
  readsVolumes?: boolean;
  /**
   * Names of every object of this kind the host lists whose definition observe reads, managed or
   * not (networks, pools: a new network's CIDR or pool's path is checked against them).
   */
  readsAllListed?(snapshot: HostSnapshot): string[];

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
  /**
   * The kind's objects hold data the data rule protects (volumes): a teardown that uses a held one
   * is held too (the VM of a held disk, the clone of a held base: gone first, they would leave the
   * volume looking derived to the next run).
   */
  readonly holdsData?: boolean;
  /**
   * The kind's objects are guests (libvirt domains): `--wait` waits for the addresses of those
   * declared running, status shows their addresses and graphics, the watcher follows their events.
   */
  readonly guest?: {
    /** The desired resource asks for a running guest. */
    declaredRunning(r: R): boolean;
    /** A (declared or recorded) config that has graphics, whose port status reads back. */
    hasGraphics(config: unknown): boolean;
    /** `virtform restart` (issue 24; helper restart): how a guest is restarted. */
    restart?: {
      /** The restart-required mark of a record's facts while the domain it was set on runs (its text), else undefined. */
      pending(facts: Record<string, unknown> | undefined, domain: { active: boolean; id?: number } | undefined): string | undefined;
      /** The steps of a restart: a stop (graceful: ACPI, forced after the shutdown timeout), then a start. */
      steps(graceful: boolean): O[];
      /** The resource a restart's steps run with: the recorded (applied) config, declared running; undefined without one. */
      desired(record: { name: string; host: HostId; specHash: string | null; details: Record<string, unknown> }): R | undefined;
    };
  };
  /** Whether a (declared or recorded) config of this kind hands out addresses by DHCP (status reads its leases). */
  servesDhcp?(config: unknown): boolean;
  /** Pools whose volumes status lists for a (declared or recorded) config of this kind. */
  statusPools?(config: unknown): string[];
  /** A create's plan lists every field, derived ones too (a pool's path is what the manifest says). */
  readonly createShowsAllFields?: boolean;
  /** Content digests of images this desired resource imports, which the image cache keeps. */
  cachedImages?(r: R): string[];
  /**
   * Fleet placement: what one resource of this kind asks of the host it is placed on (memory in
   * bytes, vCPUs) and the keys of the resources it uses there, whose {@link footprint}s count as
   * its disk (VM: its volumes). Kinds without it are not placed by the scheduler.
   */
  demands?(r: R): { memory: number; vcpus: number; uses: string[] };
  /** Fleet placement: the bytes one resource of this kind takes in a pool of its host (Volume). */
  footprint?(r: R): { pool: string; bytes: number } | undefined;
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
  /**
   * Cold moves of this kind's objects (absent: a recorded object declared on another host is
   * deleted there and created anew). Given the source's delete and the target's change, returns
   * the move's two changes (`ResourceChange.move` set on both), or conflicts on both with the reason;
   * undefined when it is no move after all (the target host has an object of its own by that name).
   */
  move?(m: MoveContext<R>): { source: ResourceChange; target?: ResourceChange } | undefined;
  /** What observe reads about a move's source object on its host (the VM kind: its snapshot count). */
  observeMove?(host: HostPort, name: string): Promise<Record<string, unknown>>;

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

/**
 * The registry of kinds as the stages see it (`kinds/index.ts` implements it): the handler of a
 * kind, and the label and teardown flag of any step operation.
 */
export interface KindRegistry {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each stage passes a kind's own resources and ops back to it
  kindOf(kind: ResourceKind): KindHandler<any, any>;
  opInfo(op: string): OpInfo;
}
