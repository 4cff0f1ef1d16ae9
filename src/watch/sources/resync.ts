/** The periodic full reconcile: a safety net for anything no other source noticed. */
import type { Enqueue, Source } from './types.js';

export class ResyncSource implements Source {
  readonly name = 'resync';
  #timer: NodeJS.Timeout | undefined;

  /** `intervalMs` 0 disables it. */
  constructor(readonly intervalMs: number) {}

  async start(enqueue: Enqueue): Promise<void> {
    if (this.intervalMs > 0) this.#timer = setInterval(() => enqueue('resync'), this.intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
