/** Who leads, as `virtform status` and `/status` show the writer lease row (src/status/leader.ts). */
import { describe, expect, it } from 'vitest';
import { leaderLine, leaseStatus, shortDuration } from '../../../src/status/index.js';
import type { LeaseRow } from '../../../src/state/index.js';

const T = Date.parse('2026-12-07T06:00:00.000Z');
const row = (o: Partial<LeaseRow> = {}): LeaseRow => ({
  name: 'writer', holder: 'ctl-1/4242/0a1b2c3d', pid: 4242, hostname: 'ctl-1', machine: 'boot:x pidns:1', command: 'virtform watch /srv/m',
  epoch: 7, acquiredAt: T - 60_000, renewedAt: T - 2_000, expiresAt: T + 13_000, now: T, ...o,
});

describe('leader status', () => {
  it('a held lease: holder, pid, host, epoch, ages by the database clock of the read', () => {
    const l = leaseStatus(row())!;
    expect(l).toEqual({
      held: true, holder: 'ctl-1/4242/0a1b2c3d', pid: 4242, hostname: 'ctl-1', command: 'virtform watch /srv/m', epoch: 7,
      acquiredAt: '2026-12-07T05:59:00.000Z', renewedAt: '2026-12-07T05:59:58.000Z', expiresAt: '2026-12-07T06:00:13.000Z',
      renewedAgoMs: 2000, expiresInMs: 13_000,
    });
    expect(leaderLine(l)).toBe('leader: ctl-1/4242/0a1b2c3d (pid 4242 on ctl-1, epoch 7, renewed 2s ago, expires in 13s)');
  });

  it('an expired or released lease: no leader, the last one named', () => {
    const l = leaseStatus(row({ expiresAt: T - 4_500 }))!;
    expect(l.held).toBe(false);
    expect(l.expiresInMs).toBe(-4_500);
    expect(leaderLine(l)).toBe('leader: none (last: ctl-1/4242/0a1b2c3d, pid 4242 on ctl-1, epoch 7, expired 4s ago)');
    // expiring exactly now is expired (the acquisition takes a lease whose expires_at <= now)
    expect(leaseStatus(row({ expiresAt: T }))!.held).toBe(false);
  });

  it('never taken: null, and the line says so', () => {
    expect(leaseStatus(undefined)).toBeNull();
    expect(leaderLine(null)).toBe('leader: none (the writer lease was never taken)');
  });

  it('durations: whole seconds rounded down, minutes past 60 s, never negative', () => {
    expect(shortDuration(0)).toBe('0s');
    expect(shortDuration(999)).toBe('0s');
    expect(shortDuration(13_999)).toBe('13s');
    expect(shortDuration(65_000)).toBe('1m05s');
    expect(shortDuration(-5)).toBe('0s');
  });
});
