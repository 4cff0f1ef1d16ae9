/**
 * The suspend switch (`virtform suspend` / `resume`) as a trigger: polls the state DB's `controls`
 * row (one indexed SELECT per interval) and enqueues `resume` when a suspension is lifted, and
 * `suspend` when one is set (the run then observes and reports without applying). The runner
 * itself reads the switch again before every run: this source only makes the change prompt.
 */
import type { Suspension } from '../../state/index.js';
import type { Enqueue, Source } from './types.js';
import { errText } from './types.js';
import type { Logger } from '../logger.js';

export class SuspendSource implements Source {
  readonly name = 'suspend';
  #timer: NodeJS.Timeout | undefined;
  #last: string | undefined;
  #polling = false;

  /** `intervalMs` 0 disables polling. */
  constructor(
    private readonly read: () => Promise<Suspension | undefined>,
    readonly intervalMs: number,
    private readonly log?: Logger,
  ) {}

  async start(enqueue: Enqueue): Promise<void> {
    // safe-catch: an unreadable suspension at start is read again at the next poll, which reports it
    this.#last = this.#id(await this.read().catch(() => undefined));
    if (this.intervalMs <= 0) return;
    this.#timer = setInterval(() => void this.#poll(enqueue), this.intervalMs);
  }

  #id(s: Suspension | undefined): string {
    return s ? `${s.since}\u0000${s.by}` : '';
  }

  async #poll(enqueue: Enqueue): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      const s = await this.read();
      const id = this.#id(s);
      if (id !== this.#last) {
        this.#last = id;
        this.log?.info(s ? 'suspended: applies paused, observing goes on' : 'resumed: applies continue', s ? { since: s.since, by: s.by, reason: s.reason } : {});
        enqueue(s ? 'suspend' : 'resume');
      }
    } catch (e) {
      this.log?.warn('reading the suspend switch failed', { error: errText(e) });
    } finally {
      this.#polling = false;
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
