/**
 * A source watches one kind of input and feeds the watcher's queue: it never reconciles itself.
 *
 * Sources today: the manifest folder (chokidar), libvirt lifecycle events of owned domains, the
 * periodic resync, the host connection (its first connect and every reconnect), and the git
 * repository (`watch --git URL`, ./git-repository.ts): `start()` begins polling the remote; a new
 * commit that verifies and validates is staged and `enqueue('git')` is called; `stop()` ends the
 * polling. The git source is also the runs' ManifestProvider: each run asks it for the folder to
 * load (the applied checkout, with a staged commit moved in first).
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
