/**
 * A source watches one kind of input and feeds the watcher's queue: it never reconciles itself.
 *
 * Sources today: the manifest folder (chokidar), libvirt lifecycle events of owned domains, the
 * periodic resync, and the host connection (its first connect and every reconnect). A git source
 * (`watch --git URL`) plugs in the same way: `start()` begins polling the remote, and whenever it
 * has checked a new revision out into the manifest folder it calls `enqueue('git')`; `stop()`
 * ends the polling. The runner then loads the folder like any other run.
 */
import type { TriggerSource } from '../queue.js';

export type Enqueue = (source: TriggerSource) => void;

export interface Source {
  /** Short name, used in logs. */
  readonly name: string;
  /** Begin watching; resolves once the source is live (e.g. the folder watch is ready). */
  start(enqueue: Enqueue): Promise<void>;
  /** Stop watching and clear timers. Idempotent. */
  stop(): Promise<void>;
}

export function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
