/**
 * The dashboard's JSON API (`/api/v1/*`, served by `virtform watch --listen` through
 * src/watch/http.ts → ./api.ts): the contract the pages (./pages/, ./assets/) consume.
 *
 * Every answer is computed from ONE cached immutable snapshot (./data.ts: built after every run, at
 * a run's start and when the status is refreshed), so what a refresh costs does not depend on how
 * many viewers there are. `seq` numbers the snapshots; the event stream (`/api/v1/events`) says
 * when a new one exists. Secrets (cloud-init user-data, passwords, tokens, keys) are never sent:
 * they are replaced by `[redacted: N bytes, sha256 <12 hex>]`.
 */
import type { ConditionType, Condition } from '../model/conditions.js';

/** API version prefix. */
export const API_PREFIX = '/api/v1';

/** A git commit with what the fetch recorded of it (author, message, commit time); null fields: not recorded. */
export interface CommitInfo {
  commit: string;
  author: string | null;
  message: string | null;
  /** ISO-8601 commit time. */
  time: string | null;
}

export interface CapacityBar {
  used: number;
  total: number;
}

export interface HostCapacity {
  id: string;
  uri: string;
  connected: boolean;
  /** Why it could not be reached (only when not connected, or its summary is empty). */
  error?: string;
  /** Bytes. */
  memory: CapacityBar;
  vcpus: CapacityBar;
  /** Bytes per active pool. */
  disk: { pool: string; used: number; total: number }[];
  /** Domains virtform manages on the host. */
  vms: number;
}

export interface RunBrief {
  id: string;
  outcome: string;
  durationMs: number;
  finishedAt: string;
}

/** `GET /api/v1/overview` */
export interface Overview {
  generatedAt: string;
  seq: number;
  /** A folder source has no commit: both null (applied may still be a revision without a commit). */
  revision: { applied: CommitInfo | null; fetched: CommitInfo | null };
  lastRun: RunBrief | null;
  /** A run is in flight now. */
  running: boolean;
  /** Resources with each condition True (every type of src/model/conditions.ts is present, 0 included). */
  counts: Record<ConditionType, number>;
  /** Managed resources (declared or recorded). */
  total: number;
  hosts: HostCapacity[];
  /** `virtform suspend` is in force. */
  suspended: boolean;
  /** Manifest errors of the last load (the last good state is kept). */
  manifestErrors: string[];
}

/**
 * The one word a resource's row shows: its most important condition that is True (in this order:
 * HostUnreachable, Stalled, HeldForDataLoss, Unschedulable, Reconciling, Drifted, RestartRequired,
 * Suspended), else `Ready` when Ready is True, else `NotReady`.
 */
export type ResourceState = ConditionType | 'NotReady';

export const STATE_PRIORITY: readonly ConditionType[] = [
  'HostUnreachable', 'Stalled', 'HeldForDataLoss', 'Unschedulable', 'Reconciling', 'Drifted', 'RestartRequired', 'Suspended',
];

export interface NicAddress {
  mac: string;
  network?: string;
  addresses: string[];
}

/** One row of the resources table. */
export interface ResourceItem {
  /** `resourceKey`: `Kind/name` on the implicit local host, `host/Kind/name` elsewhere (URL-encode it in paths). */
  key: string;
  kind: string;
  name: string;
  host: string;
  status: ResourceState;
  /** One line: why it is not Ready (null when Ready). */
  reason: string | null;
  /** running | stopped | active | present …; what the manifests ask. */
  desired: string;
  /** What the host shows now. */
  observed: string;
  conditions: Condition[];
  labels: Record<string, string>;
  /** VMs (running, host asked): the addresses of each NIC. */
  addresses?: NicAddress[];
  /** ISO-8601: last change of its record. */
  updatedAt: string | null;
}

export type SortField = 'name' | 'kind' | 'host' | 'status';

/** The query of `GET /api/v1/resources` (parsed by ./api.ts; bad values: 400 with a message). */
export interface ResourceQuery {
  kind?: string;
  host?: string;
  /** `k=v` (several: all must match); `k` alone: the label is present. */
  label?: string[];
  /** A condition type that must be True. */
  condition?: ConditionType;
  /** Case-insensitive substring of the key, a label value or the reason. */
  q?: string;
  sort: SortField;
  order: 'asc' | 'desc';
  /** 1-based. */
  page: number;
  /** 1..500 (default 50). */
  pageSize: number;
}

export const MAX_PAGE_SIZE = 500;
export const DEFAULT_PAGE_SIZE = 50;

/** `GET /api/v1/resources?kind=&host=&label=k=v&condition=Type&q=&sort=&order=&page=&pageSize=` */
export interface ResourcePage {
  seq: number;
  /** Matching the filters (all pages). */
  total: number;
  page: number;
  pageSize: number;
  items: ResourceItem[];
  /** Values to filter by, over ALL resources (not only the filtered ones), with counts. */
  facets: {
    kinds: { value: string; count: number }[];
    hosts: { value: string; count: number }[];
    /** Condition types True on at least one resource. */
    conditions: { value: ConditionType; count: number }[];
    labels: { value: string; count: number }[];
  };
}

export interface FieldRow {
  /** `spec.memory`, `config.vcpus`… (dotted path into the desired config). */
  path: string;
  desired: unknown;
  observed: unknown;
  differs: boolean;
}

export interface JournalEntry {
  id: number;
  runId: string | null;
  op: string;
  status: string;
  startedAt: string;
  finishedAt: string | null;
  error: string | null;
}

export interface EventEntry {
  time: string;
  type: string;
  message: string;
}

/** `GET /api/v1/resources/{key}` */
export interface ResourceDetail {
  seq: number;
  item: ResourceItem;
  /** Where the manifest declares it (null: not declared, e.g. about to be pruned). */
  manifest: { file: string; line: number; col: number } | null;
  /** The desired config (redacted). */
  desired: unknown;
  /** What the host / the record shows (redacted). */
  observed: unknown;
  fields: FieldRow[];
  conditions: Condition[];
  addresses: NicAddress[];
  /** The last 50 journal steps of this resource, newest first. */
  journal: JournalEntry[];
  /** The last 50 events, newest first. */
  events: EventEntry[];
}

export interface PlanStepView {
  key: string;
  op: string;
  /** `vm.start`, … human label. */
  label: string;
  /** live | restart | replace | held | … marks the text shows. */
  marks: string[];
  reason: string;
}

/** `GET /api/v1/plan`: the plan of the last run (null fields before the first run). */
export interface PlanView {
  runId: string | null;
  time: string | null;
  /** The same rendering as `reconcile --dry-run` (no colour), with [live]/[restart] marks, held and replace explained. */
  text: string;
  steps: PlanStepView[];
}

export interface StepTiming {
  kind: string;
  name: string;
  host: string;
  op: string;
  ms: number;
  /** succeeded | failed | skipped | … */
  outcome: string;
}

export interface RunFailure {
  resource: string;
  error: string;
  code?: string;
}

export interface RunCounts {
  create: number;
  change: number;
  replace: number;
  delete: number;
  conflict: number;
  steps: number;
  held: number;
  failed: number;
}

/** One row of the `runs` table (history). */
export interface RunSummary {
  id: string;
  startedAt: string;
  finishedAt: string;
  /** What asked for the run (`file`, `event`, `resync`, `git`, `requeue`…, comma-joined). */
  trigger: string;
  outcome: string;
  durationMs: number;
  commit: string | null;
  revisionId: number | null;
  counts: RunCounts;
}

/** `GET /api/v1/runs?page=&pageSize=`: newest first. */
export interface RunPage {
  total: number;
  page: number;
  pageSize: number;
  /** `--history-runs`: how many are kept. */
  retention: number;
  items: RunSummary[];
}

/** `GET /api/v1/runs/{id}` */
export interface RunDetail extends RunSummary {
  commitInfo: CommitInfo | null;
  failures: RunFailure[];
  steps: StepTiming[];
}

export interface AttentionItem {
  key: string;
  kind: string;
  name: string;
  host: string;
  /** The True condition that puts it here. */
  condition: ConditionType;
  reason: string;
  message: string;
  since: string;
  /** What to do (`virtform reconcile --allow-data-loss DIR`, `virsh reboot NAME` …). */
  action: string;
}

/** `GET /api/v1/attention`: everything not Ready, most important first. */
export interface AttentionList {
  seq: number;
  total: number;
  items: AttentionItem[];
}

/** `GET /api/v1/events` (text/event-stream): `event: snapshot` with this data, each time a new snapshot exists. */
export interface SnapshotEvent {
  seq: number;
  /** The run it follows or belongs to (null: a status refresh without a run). */
  runId: string | null;
  /** `start`: a run started (its resources show Reconciling); `end`: a run finished; `refresh`: a status refresh. */
  phase: 'start' | 'end' | 'refresh';
  /** Resource keys whose row changed since the previous snapshot. */
  changedKeys: string[];
  /**
   * The new state of each changed key (a removed resource: absent), for the first
   * {@link MAX_EVENT_STATUSES} changed keys: a page can update its rows without a request.
   */
  statuses: Record<string, ResourceState>;
}

export const MAX_EVENT_STATUSES = 500;

/** Error body of every 4xx/5xx of the API. */
export interface ApiError {
  error: string;
}
