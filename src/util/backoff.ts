/**
 * Jittered, capped exponential backoff: the one implementation behind every retry in virtform
 * (apply step retries, the watcher's requeue of failed runs and its reconnects, the state store's
 * SQLITE_BUSY retry).
 *
 * Attempt n (1-based) has the ceiling `min(max, base × factor^(n-1))`; the delay is drawn from
 * `[ceiling × (1 - jitter), ceiling]` ("equal jitter" with jitter 0.5): a retry never waits much
 * less than the ceiling, and many clients retrying at once spread out instead of stampeding.
 * Written here rather than taken from a package: the npm backoff libraries are either
 * promise-retry wrappers that own the loop (the watcher's requeue is a timer, not a loop) or
 * unmaintained, and this is ten lines.
 */

export interface BackoffPolicy {
  /** Ceiling of the first delay, ms. */
  baseMs: number;
  /** Largest ceiling, ms. */
  maxMs: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Fraction of the ceiling that is random (0 = none, 1 = full jitter; default 0.5). */
  jitter?: number;
}

/** Delay before retry `attempt` (1 = the first retry). */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const factor = policy.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, policy.jitter ?? 0.5));
  const n = Math.max(1, Math.floor(attempt));
  const ceiling = Math.max(0, Math.min(policy.maxMs, policy.baseMs * factor ** (n - 1)));
  return Math.round(ceiling * (1 - jitter) + random() * ceiling * jitter);
}

/** Stateful backoff: `next()` gives the next delay and counts the attempt; `reset()` after a success. */
export class Backoff {
  #attempt = 0;
  constructor(readonly policy: BackoffPolicy, private readonly random: () => number = Math.random) {}

  /** Attempts since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  next(): number {
    this.#attempt += 1;
    return backoffDelay(this.policy, this.#attempt, this.random);
  }

  reset(): void {
    this.#attempt = 0;
  }
}

/** Sleep that an AbortSignal ends early (resolves, never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
