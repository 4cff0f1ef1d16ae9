/**
 * The manifest folder, watched with chokidar. A burst of file events (a `git pull` touching 50
 * files) becomes one trigger: the trigger fires `debounceMs` after the last event, but a stream
 * that never pauses still fires `maxDebounceMs` after its first event. `.git/`, editor swap,
 * backup and lock files and non-YAML files are ignored (directory add/remove counts). When the
 * folder itself is removed (a deploy tool replacing it) the source waits for it to come back and
 * watches it again. A folder removed and re-created within a few milliseconds (`rm -r`, `mkdir`,
 * `cp`) often sends no event chokidar reports, and its watches stay on the removed directory: the
 * folder's identity (device, inode and birth time) is checked every `identityCheckMs` (default 1 s), and a
 * changed one is watched again like a removal.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, resolve as resolvePath, sep } from 'node:path';
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import { silentLogger, type Logger } from '../logger.js';
import { errText, type Enqueue, type Source } from './types.js';

const EDITOR_TEMP = [/\.sw[a-p]$/i, /\.swx$/i, /~$/, /^\.#/, /^4913$/];

/** Paths the file watcher ignores: `.git/`, editor swap/backup/lock files and vim's `4913` probe. */
export function isIgnoredPath(path: string): boolean {
  if (path.split(/[\\/]/).includes('.git')) return true;
  const base = basename(path);
  return EDITOR_TEMP.some((re) => re.test(base));
}

function isManifestFile(path: string): boolean {
  return /\.ya?ml$/i.test(path);
}

export interface ManifestFolderOptions {
  dir: string;
  /** Quiet time after the last event (default 500 ms). */
  debounceMs?: number;
  /** Longest a continuous stream of events can postpone the trigger (default max(5 s, 10 × debounce)). */
  maxDebounceMs?: number;
  logger?: Logger;
  /** How often the folder's identity is checked (default 1000 ms; 0: never). */
  identityCheckMs?: number;
}

/**
 * The folder's device, inode and birth time, or undefined while it does not exist. The inode
 * alone does not do: a directory removed and made again at once often gets the same inode number
 * (ext4, tmpfs); its birth time differs (0 where the file system keeps none: there, a folder
 * re-created with the same inode number is not told apart, and the resync reloads it).
 */
function identityOf(dir: string): string | undefined {
  try {
    const st = statSync(dir, { bigint: true });
    return `${st.dev}:${st.ino}:${st.birthtimeNs}`;
  } catch {
    // safe-catch: a folder that is not there has no identity (removed: the rewatch waits for it)
    return undefined;
  }
}

export class ManifestFolderSource implements Source {
  readonly name = 'manifest-folder';
  readonly dir: string;
  readonly debounceMs: number;
  readonly maxDebounceMs: number;
  readonly #log: Logger;
  #enqueue: Enqueue = () => undefined;
  #watcher: FSWatcher | undefined;
  #rewatching = false;
  #timer: NodeJS.Timeout | undefined;
  #burstStart: number | undefined;
  #stopped = false;
  /** The identity of the folder the current watcher watches. */
  #identity: string | undefined;
  #identityTimer: NodeJS.Timeout | undefined;
  readonly #identityCheckMs: number;

  constructor(o: ManifestFolderOptions) {
    this.dir = resolvePath(o.dir);
    this.debounceMs = o.debounceMs ?? 500;
    this.#identityCheckMs = o.identityCheckMs ?? 1000;
    this.maxDebounceMs = o.maxDebounceMs ?? Math.max(5_000, this.debounceMs * 10);
    this.#log = o.logger ?? silentLogger;
  }

  async start(enqueue: Enqueue): Promise<void> {
    this.#enqueue = enqueue;
    await this.#watch();
    if (this.#identityCheckMs > 0) {
      this.#identityTimer = setInterval(() => this.#checkIdentity(), this.#identityCheckMs);
      this.#identityTimer.unref();
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#identityTimer);
    clearTimeout(this.#timer);
    const w = this.#watcher;
    this.#watcher = undefined;
    // safe-catch: closing a file watcher that is replaced or stopped
    await w?.close().catch(() => undefined);
  }

  async #watch(): Promise<void> {
    const dir = this.dir;
    this.#identity = identityOf(dir);
    const watcher = chokidarWatch(dir, {
      ignoreInitial: true,
      // Not persistent: chokidar (4.0.3, 5.0.0) drops the closer of a directory's fs.watch when
      // close() lands during that directory's scan (paulmillr/chokidar#1482), which happens when
      // the folder is replaced (the old watcher is closed on its removal) or at stop. A persistent
      // orphan kept the process alive after its graceful stop, and being shared process-wide by
      // path, it was reused by the next watcher of the folder, bound to the removed directory: the
      // re-created folder's edits went unseen until the resync. Non-persistent handles are each
      // watcher's own and never keep the process alive; `virtform watch` keeps itself alive.
      persistent: false,
      ignored: (path: string) => path !== dir && isIgnoredPath(path.startsWith(dir) ? path.slice(dir.length) || sep : path),
    });
    this.#watcher = watcher;
    watcher.on('all', (event, path) => this.#onEvent(event, path));
    watcher.on('error', (e) => this.#log.warn('file watcher error', { error: errText(e) }));
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  }

  /** A folder replaced under the watcher (another directory at its path, or none): watched again. */
  #checkIdentity(): void {
    if (this.#stopped || this.#rewatching || !this.#watcher) return;
    const now = identityOf(this.dir);
    if (now === this.#identity) return;
    this.#log.warn(now === undefined ? 'manifest folder removed; watching for it to come back' : 'manifest folder replaced; watching the new one', { dir: this.dir });
    void this.#rewatch();
  }

  /** Re-create the watcher once the folder exists again, then trigger a reload. */
  async #rewatch(): Promise<void> {
    if (this.#rewatching) return;
    this.#rewatching = true;
    try {
      const old = this.#watcher;
      this.#watcher = undefined;
      // safe-catch: closing a file watcher that is replaced or stopped
      await old?.close().catch(() => undefined);
      while (!this.#stopped) {
        await new Promise((r) => setTimeout(r, Math.max(100, this.debounceMs)));
        if (this.#stopped) return;
        if (existsSync(this.dir)) {
          await this.#watch();
          if (this.#stopped) {
            const w = this.#watcher as FSWatcher | undefined;
            this.#watcher = undefined;
            // safe-catch: closing a file watcher that is replaced or stopped
            await w?.close().catch(() => undefined);
            return;
          }
          this.#log.info('manifest folder is back; watching it again', { dir: this.dir });
          this.#enqueue('file');
          return;
        }
      }
    } catch (e) {
      this.#log.error('could not watch the manifest folder again; the periodic resync still reloads it', { error: errText(e) });
    } finally {
      this.#rewatching = false;
    }
  }

  #onEvent(event: string, path: string): void {
    if (this.#stopped) return;
    if (event === 'unlinkDir' && path === this.dir) {
      this.#log.warn('manifest folder removed; watching for it to come back', { dir: this.dir });
      void this.#rewatch();
    }
    const isDirEvent = event === 'addDir' || event === 'unlinkDir';
    if (!isDirEvent && !isManifestFile(path)) return;
    this.#log.debug('manifest change', { event, path });
    const now = Date.now();
    this.#burstStart ??= now;
    const wait = Math.max(0, Math.min(this.debounceMs, this.#burstStart + this.maxDebounceMs - now));
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#burstStart = undefined;
      this.#enqueue('file');
    }, wait);
  }
}
