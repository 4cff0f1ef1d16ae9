/**
 * virtform state DB: public API. The reconciler depends on these names.
 */
export { defaultDbPath } from './paths.js';
export {
  openStateStore,
  StateDbMissingError,
  StateStore,
  type ResourceRecord,
  type ResourceIndexEntry,
  type ResourceUpsert,
  type JournalEntry,
  type JournalStatus,
  type RevisionRecord,
  type EventRecord,
  type OpenOptions,
} from './store.js';
export { LockHeldError, isPidAlive, WRITER_LOCK_NAME, type WriterLock, type LockOwner } from './lock.js';
export type { StateDatabase } from './schema.js';
