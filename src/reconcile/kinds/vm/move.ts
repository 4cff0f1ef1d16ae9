/**
 * Cold moves of VMs: a VM recorded on host A and declared on host B is stopped on A (gracefully,
 * forced after the shutdown timeout) before its volumes are copied (their own moves, `volume/move.ts`,
 * ordered after this stop by the plan), defined (and started) on B, and only then undefined on A.
 * A VM with snapshots is not moved (their state lives on A): a conflict on both hosts.
 */
import { hostOf } from '../../../model/kinds.js';
import type { MoveContext } from '../../core/kind.js';
import type { ResourceChange } from '../../core/change.js';
import type { HostPort } from '../../ports.js';
import type { DesiredVm } from './types.js';

export async function observeVmMove(host: HostPort, name: string): Promise<Record<string, unknown>> {
  return { snapshots: host.domainSnapshotCount ? await host.domainSnapshotCount(name) : 0 };
}

export function moveVm(m: MoveContext<DesiredVm>): { source: ResourceChange; target?: ResourceChange } {
  const from = hostOf(m.from);
  const to = hostOf(m.to);
  const moveSource = { from, to, role: 'source' as const, partner: m.desired.key };
  const moveTarget = { from, to, role: 'target' as const, partner: m.source.key };
  const snapshots = Number(m.from.moveFacts?.get(m.source.key)?.snapshots ?? 0);
  if (snapshots > 0) {
    return {
      source: {
        ...m.source, action: 'conflict', steps: [], move: moveSource,
        reason: `it has ${snapshots} snapshot${snapshots === 1 ? '' : 's'} on host ${from}: a VM with snapshots is not moved (delete them first)`,
      },
      ...(m.target ? { target: m.target } : {}),
    };
  }
  if (m.target?.action === 'conflict') return { source: { ...m.source, action: 'conflict', steps: [], reason: m.target.reason, move: moveSource }, target: m.target };
  const running = m.from.domains.get(m.name)?.active === true;
  const graceful = m.opts.gracefulStop ?? true;
  const source: ResourceChange = {
    ...m.source, move: moveSource,
    reason: `moves to host ${to}: ${running ? 'stopped here before its disks are copied, ' : ''}undefined here once it is defined on ${to}`,
    steps: [...(running ? [{ op: 'vm.stop', graceful }] : []), ...m.source.steps],
  };
  const target = m.target ? {
    ...m.target, move: moveTarget,
    reason: `moves from host ${from}${m.target.action === 'create' ? '' : `: ${m.target.reason}`}`,
  } : undefined;
  return { source, ...(target ? { target } : {}) };
}
