/**
 * Table types for kysely. Kept dialect-neutral: timestamps are ISO-8601 text, JSON is text,
 * booleans are integers (0/1), ids are integer autoincrement.
 */
import type { Generated } from 'kysely';

export interface ResourcesTable {
  id: Generated<number>;
  kind: string;
  name: string;
  uuid: string | null;
  spec_hash: string | null;
  generation: number;
  desired_state: string | null;
  observed_status: string | null;
  last_error: string | null;
  attempts: number;
  /** JSON object as text. */
  details: string;
  created_at: string;
  updated_at: string;
  last_applied_revision: number | null;
  /** The host (hosts.id) the record describes; default 'local' (migration 0002). */
  host: Generated<string>;
}

export interface JournalTable {
  id: Generated<number>;
  run_id: string;
  kind: string;
  name: string;
  action: string;
  /** JSON object as text. */
  intent: string;
  status: 'open' | 'succeeded' | 'failed' | 'abandoned';
  error: string | null;
  attempt: number;
  started_at: string;
  finished_at: string | null;
  /** The host (hosts.id) the step ran against; default 'local' (migration 0002). */
  host: Generated<string>;
}

export interface RevisionsTable {
  id: Generated<number>;
  run_id: string;
  manifest_digest: string;
  git_commit: string | null;
  /** 0/1 */
  git_dirty: number;
  started_at: string;
  finished_at: string | null;
  outcome: string;
  /** JSON object as text. */
  summary: string;
}

export interface EventsTable {
  id: Generated<number>;
  at: string;
  level: string;
  kind: string | null;
  name: string | null;
  /** The host of the resource the event is about; null for none (migration 0008). */
  host: string | null;
  message: string;
}

/**
 * The writer lease (migration 0009; see src/state/lease.ts). Times are ms since 1970 by the
 * database's clock; `epoch` is the fencing token (+1 per acquisition by a new holder).
 */
export interface LeasesTable {
  name: string;
  /** Unique per acquisition: `hostname/pid/random`. */
  holder: string;
  pid: number;
  hostname: string;
  /** The holder's machine identity (kernel boot id, pid namespace; migration 0012); null: written by an older virtform. */
  machine: Generated<string | null>;
  command: string;
  epoch: number;
  acquired_at: number;
  renewed_at: number;
  expires_at: number;
}

/** One libvirt host this DB has managed (migration 0002). */
export interface HostsTable {
  id: string;
  /** Connection URI last used for it. */
  uri: string;
  hostname: string;
  /** `<host><uuid>` of the capabilities XML; null when the driver reports none (the test driver). */
  host_uuid: string | null;
  /** Driver part of the URI scheme: qemu, test, ... */
  driver: string;
  first_seen: string;
  last_seen: string;
}

/** One git manifest source (migration 0003). */
export interface GitSourcesTable {
  id: string;
  /** Redacted: never credentials. */
  url: string;
  /** `branch:main`, `tag:v1`, `commit:<sha>` or `HEAD`. */
  ref: string;
  path: string;
  fetched_commit: string | null;
  fetched_at: string | null;
  applied_commit: string | null;
  applied_at: string | null;
  applied_outcome: string | null;
  applied_revision: number | null;
  /** The fetched commit that was refused (validation, signature), while it is the fetched one. */
  rejected_commit: string | null;
  error: string | null;
  /** `validation` | `signature` | `fetch` | `checkout`. */
  error_kind: string | null;
  error_at: string | null;
  /** The last fetch failed (null after a successful one). */
  fetch_error: string | null;
  fetch_error_at: string | null;
  updated_at: string;
}

/** Named switches set without the writer lock (migration 0004): `suspend`. */
export interface ControlsTable {
  name: string;
  value: string;
  reason: string | null;
  /** `user@hostname (pid N)`. */
  set_by: string;
  set_at: string;
}

/** Last known status of each condition of each resource (migration 0004). */
export interface ConditionsTable {
  host: Generated<string>;
  kind: string;
  name: string;
  type: string;
  status: string;
  reason: string;
  message: string;
  last_transition_time: string;
}

/** The baseline of a definition: libvirt's inactive XML after virtform's last write (migration 0005). */
export interface BaselinesTable {
  host: Generated<string>;
  kind: string;
  name: string;
  sha256: string;
  xml: string;
  version: string;
  recorded_at: string;
}

/** The no-op fast path's record of definitions compared without a difference (migration 0013). */
export interface DefinitionChecksTable {
  host: Generated<string>;
  kind: string;
  name: string;
  sha256: string;
  inputs: string;
}

/** Paths on the host virtform created for a resource (migration 0007). */
export interface CreatedPathsTable {
  host: Generated<string>;
  kind: string;
  name: string;
  path: string;
  created_at: string;
}

/** Every use of a file seen on the host (migration 0006): a volume once used stays data. */
export interface VolumeReferencesTable {
  host: Generated<string>;
  path: string;
  used_by: string;
  role: string;
  source: string;
  managed: number;
  first_seen: string;
}

/** One run (migration 0014): the dashboard's history. JSON columns: counts, failures, steps. */
export interface RunsTable {
  id: string;
  started_at: string;
  finished_at: string;
  /** The trigger sources, comma-joined. */
  trigger: string;
  outcome: string;
  duration_ms: number;
  revision_id: number | null;
  git_commit: string | null;
  counts: string;
  failures: string;
  steps: string;
}

/** What a fetch learnt of a commit (migration 0014). */
export interface GitCommitsTable {
  sha: string;
  /** `Name <email>`. */
  author: string;
  /** The full message (subject, blank line, body). */
  message: string;
  /** ISO-8601 commit time. */
  committed_at: string;
  recorded_at: string;
}

/** Requests to the writer lease's holder (migration 0015; src/state/requests.ts). */
export interface RequestsTable {
  id: Generated<number>;
  /** `plan`, `restart`, `snapshot-revert`, …: the handler the holder runs. */
  type: string;
  /** JSON object as text: the handler's arguments (no secrets: anyone reading the DB sees them). */
  args: string;
  /** `queued` | `running` | `succeeded` | `failed` | `cancelled` | `abandoned`. */
  status: string;
  /** `user@hostname (pid N)`. */
  requested_by: string;
  requested_at: string;
  /** The lease holder (its holder id and epoch) that claimed it. */
  claimed_by: string | null;
  started_at: string | null;
  finished_at: string | null;
  /** JSON object as text: the {@link RequestOutcome} (null until finished). */
  outcome: string | null;
}

export interface StateDatabase {
  runs: RunsTable;
  git_commits: GitCommitsTable;
  requests: RequestsTable;
  baselines: BaselinesTable;
  definition_checks: DefinitionChecksTable;
  volume_references: VolumeReferencesTable;
  controls: ControlsTable;
  conditions: ConditionsTable;
  hosts: HostsTable;
  resources: ResourcesTable;
  journal: JournalTable;
  revisions: RevisionsTable;
  events: EventsTable;
  leases: LeasesTable;
  git_sources: GitSourcesTable;
  created_paths: CreatedPathsTable;
}
