/**
 * virtform state DB: public API. The reconciler depends on these names.
 */
export { defaultDbPath } from './paths.js';
export {
  openStateStore,
  StateDbMissingError,
  type StateStore,
  type ResourceRecord,
  type ResourceIndexEntry,
  type ResourceUpsert,
  type JournalEntry,
  type JournalStatus,
  type RevisionRecord,
  type EventRecord,
  type GitSourceRecord, type RunRecord, type GitCommitRecord,
  type GitSourceUpdate,
  type OpenOptions,
  type Suspension, type ConditionSyncOptions,
  type BaselineEntry,
  type DefinitionCheck,
  type StoredReference,
  StateDbOpenError,
  StateDbUrlError,
  type SqliteStateStore,
  type PostgresStateStore,
  isPostgresLocation,
  redactPostgresUrl,
} from './store.js';
export {
  DEFAULT_HOST_ID, HOST_KEYED_TABLES, HostMismatchError, describeHost, sameHost, type HostBinding, type HostIdentity, type HostKeyedTable, type HostRecord, type HostRekey,
} from './hosts.js';
export {
  DEFAULT_LEASE_TIMING, Lease, LeaseHeldError, LeaseLostError, WRITER_LEASE, acquireLease, isPidAlive, leaseTimingProblem, machineIdentity, readLease,
  sameMachine, takeoverBoundMs, takeoverBoundText, tryAcquireLease,
  type LeaseDeps, type LeaseDialect, type LeaseOwner, type LeaseRow, type LeaseTiming, type WaitOptions,
} from './lease.js';
export type { StateDatabase } from './schema.js';
export {
  FINAL_STATUSES, RequestOrphanedError, RequestTimeoutError, awaitOutcome, leaseLive, submit,
  type AwaitOptions, type RequestOutcome, type RequestRecord, type RequestStatus, type RequestType,
} from './requests.js';
