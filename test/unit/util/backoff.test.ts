import { describe, expect, it } from 'vitest';
import { Backoff, backoffDelay } from '../../../src/util/backoff.js';
import { backoffDelay as applyBackoff } from '../../../src/reconcile/apply.js';

describe('backoffDelay', () => {
  it('doubles from the base, is capped, and the jitter stays within [ceiling × (1 - jitter), ceiling]', () => {
    const p = { baseMs: 1000, maxMs: 60_000 };
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(p, n, () => 1))).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
    expect([1, 2, 7].map((n) => backoffDelay(p, n, () => 0))).toEqual([500, 1000, 30_000]);
    expect(backoffDelay({ ...p, jitter: 0 }, 3, () => 0)).toBe(4000);
    expect(backoffDelay({ ...p, jitter: 1 }, 3, () => 0)).toBe(0);
    expect(backoffDelay({ baseMs: 10, maxMs: 40, factor: 3, jitter: 0 }, 2)).toBe(30);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(p, 3);
      expect(d).toBeGreaterThanOrEqual(2000);
      expect(d).toBeLessThanOrEqual(4000);
    }
  });

  it('the apply step retry uses it with its policy field names', () => {
    const policy = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 300 };
    expect([1, 2, 3, 4].map((n) => applyBackoff(policy, n, () => 1))).toEqual([100, 200, 300, 300]);
    expect(applyBackoff(policy, 2, () => 0)).toBe(100);
  });
});

describe('Backoff', () => {
  it('counts attempts and resets', () => {
    const b = new Backoff({ baseMs: 1000, maxMs: 4000, jitter: 0 });
    expect([b.next(), b.next(), b.next(), b.next()]).toEqual([1000, 2000, 4000, 4000]);
    expect(b.attempt).toBe(4);
    b.reset();
    expect(b.attempt).toBe(0);
    expect(b.next()).toBe(1000);
  });
});
