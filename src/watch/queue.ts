/**
 * The watcher's one work queue. virtform reconciles the whole world at once (level-triggered), so
 * the queue holds a single item, "the world is dirty", plus the set of sources that asked for it:
 * any number of adds before the runner takes the item coalesce into one run, and adds while a run
 * is in flight make exactly one follow-up run.
 *
 * `addAfter` is the requeue of a failed run: one delayed add at a time (a newer one replaces the
 * older), cancelled when a run succeeds or the queue shuts down.
 */
export type BuiltinTrigger = 'file' | 'event' | 'resync' | 'reconnect' | 'initial' | 'requeue';
/** What asked for a run: a builtin source, or the name of a source plugged in later (e.g. `git`). */
export type TriggerSource = BuiltinTrigger | (string & {});

export interface Delayed {
  source: TriggerSource;
  delayMs: number;
  dueAt: string;
}

export class CoalescingQueue {
  readonly #pending = new Set<TriggerSource>();
  #delayed: (Delayed & { timer: NodeJS.Timeout }) | undefined;
  #shutDown = false;

  /** `onAdd` is called after every accepted add (the runner starts its loop from it). */
  constructor(private readonly onAdd: (source: TriggerSource) => void = () => undefined) {}

  /** Mark the world dirty. Returns false once the queue is shut down. */
  add(source: TriggerSource): boolean {
    if (this.#shutDown) return false;
    this.#pending.add(source);
    this.onAdd(source);
    return true;
  }

  /** Add `source` after `delayMs`, replacing a delayed add still waiting. */
  addAfter(source: TriggerSource, delayMs: number): void {
    if (this.#shutDown) return;
    this.cancelDelayed();
    const timer = setTimeout(() => {
      this.#delayed = undefined;
      this.add(source);
    }, delayMs);
    this.#delayed = { source, delayMs, dueAt: new Date(Date.now() + delayMs).toISOString(), timer };
  }

  cancelDelayed(): void {
    if (!this.#delayed) return;
    clearTimeout(this.#delayed.timer);
    this.#delayed = undefined;
  }

  /** The delayed add waiting, if any. */
  get delayed(): Delayed | undefined {
    if (!this.#delayed) return undefined;
    const { source, delayMs, dueAt } = this.#delayed;
    return { source, delayMs, dueAt };
  }

  /** True while an add has not been taken yet. */
  get dirty(): boolean {
    return this.#pending.size > 0;
  }

  /** Take the item: the sources that asked since the last take (empty when not dirty). */
  take(): TriggerSource[] {
    const sources = [...this.#pending];
    this.#pending.clear();
    return sources;
  }

  get isShutDown(): boolean {
    return this.#shutDown;
  }

  /** No more adds; the delayed add is cancelled and what is pending is dropped. */
  shutDown(): void {
    this.#shutDown = true;
    this.cancelDelayed();
    this.#pending.clear();
  }
}
