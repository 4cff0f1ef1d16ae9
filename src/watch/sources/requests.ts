/**
 * The request queue (src/state/requests.ts) as a trigger: polls for queued requests (one indexed
 * SELECT per interval) and enqueues `request` while any is waiting; the runner serves them between
 * runs, while it holds the writer lease.
 */
import type { RequestRecord } from '../../state/index.js';
import type { Enqueue, Source } from './types.js';
import { errText } from './types.js';
import type { Logger } from '../logger.js';

export class RequestSource implements Source {
  readonly name = 'request';
  #timer: NodeJS.Timeout | undefined;
  #polling = false;

  /** `intervalMs` 0 disables polling (requests are then served only when another trigger runs). */
  constructor(
    private readonly queued: () => Promise<RequestRecord[]>,
    readonly intervalMs: number,
    private readonly log?: Logger,
  ) {}

  async start(enqueue: Enqueue): Promise<void> {
    if (this.intervalMs <= 0) return;
    this.#timer = setInterval(() => void this.#poll(enqueue), this.intervalMs);
  }

  async #poll(enqueue: Enqueue): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      const waiting = await this.queued();
      if (waiting.length > 0) {
        this.log?.debug('requests waiting', { ids: waiting.map((r) => r.id) });
        enqueue('request');
      }
    } catch (e) {
      this.log?.warn('reading the request queue failed', { error: errText(e) });
    } finally {
      this.#polling = false;
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
