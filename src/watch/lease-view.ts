/**
 * What a watcher says about the writer lease it holds or waits for, the same for the single-host
 * watch (controller.ts) and the fleet watch (src/fleet/watch-status.ts): why it is a standby
 * (/readyz) and the `lease` object of /status.
 */
import type { Lease } from '../state/index.js';
import type { LeaseStatus } from '../status/index.js';

/** Why a watcher without the lease is not ready, or undefined while it holds it. */
export function standbyReason(lease: Lease | undefined): string | undefined {
  if (lease?.held === true) return undefined;
  const lost = lease?.lostReason;
  return lost ? `standby: ${lost}` : 'standby: another process holds the writer lease (or it was not acquired yet)';
}

/** /status's `lease`: this watcher's role, its epoch and holder while leading, and who leads. */
export interface LeaseView {
  role: 'leader' | 'standby';
  epoch: number | null;
  holder: string | null;
  lost: string | null;
  leader: LeaseStatus | null;
}

export function leaseView(lease: Lease | undefined, leader: LeaseStatus | null): LeaseView {
  const held = lease?.held === true ? lease : undefined;
  return {
    role: held ? 'leader' : 'standby',
    epoch: held ? held.epoch : null,
    holder: held ? held.holder : null,
    lost: lease?.lostReason ?? null,
    leader,
  };
}
