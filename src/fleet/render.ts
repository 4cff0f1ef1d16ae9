/** The fleet's part of the plan: where each new VM goes and why, moves, unschedulable VMs, unreachable hosts. */
import { LOCAL_HOST, hostOfKey } from '../model/kinds.js';
import { printable as safe } from '../util/printable.js';
import type { Placement, Rejection } from './contract.js';
import type { FleetPlanInfo } from './types.js';

/** `→ host h2 (fits: 3.1 GiB free; spread by zone for app=web: a 1, b 1, c 0)` (stand-in for sched's placementLine). */
export function placementText(p: Placement): string {
  return `→ host ${p.host} (${safe(p.summary)})`;
}

function rejectionText(r: Rejection): string {
  return `${r.host}: ${r.filter}: ${safe(r.detail)}`;
}

/** `--explain`: each rejected host with the filter that rejected it, and the winner's score parts. */
export function explainText(p: Placement): string[] {
  const score = p.score && Object.keys(p.score).length > 0
    ? [`      score on ${p.host}: ${Object.entries(p.score).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(3)}`).join(', ')}`] : [];
  return [...p.rejected.map((r) => `      rejected ${rejectionText(r)}`), ...score];
}

/** The plan line's suffix for a resource: its placement (a VM placed this run), else its host on a fleet. */
export function annotateKey(info: FleetPlanInfo, key: string): string | undefined {
  const p = info.annotations.get(key);
  if (p) return placementText(p);
  const host = hostOfKey(key);
  return host === LOCAL_HOST ? undefined : `on host ${host}`;
}

/** Lines after the plan: moves (with reasons), unschedulable VMs, unreachable hosts, removed Hosts still owning objects. */
export function fleetLines(info: FleetPlanInfo, opts: { explain: boolean; rebalance: boolean; dryRun: boolean }): string[] {
  const lines: string[] = [];
  if (opts.explain) {
    for (const [key, p] of info.annotations) lines.push(`  placement of ${key.split('/').slice(-1)[0]}: ${placementText(p)}`, ...explainText(p));
  }
  for (const m of info.moves) {
    lines.push(`  move: VM ${m.vm} ${m.from} → ${m.to} (${m.cause}: ${safe(m.reason)})${m.cause === 'rebalance' && opts.dryRun ? ' [proposed]' : ''}`);
  }
  if (opts.rebalance && info.moves.every((m) => m.cause !== 'rebalance')) lines.push('  rebalance: no move proposed (the fleet is within its skew and load thresholds)');
  for (const u of info.unschedulable.values()) {
    lines.push(`  ! unschedulable: VM ${u.vm}: ${safe(u.summary)}`);
    for (const r of u.reasons) lines.push(`      ${rejectionText(r)}`);
  }
  for (const [host, why] of info.unreachable) lines.push(`  ! host ${host} unreachable: ${safe(why)}; its resources are not touched (HostUnreachable)`);
  for (const o of info.orphanHosts) {
    lines.push(`  ! conflict: host ${o.host} has no Host manifest but virtform owns ${o.resources.join(', ')} on it: drain it or delete them first`);
  }
  return lines;
}

export function fleetJson(info: FleetPlanInfo): Record<string, unknown> {
  return {
    placements: [...info.annotations].map(([key, p]) => ({ resource: key, vm: p.vm, host: p.host, why: p.why, summary: p.summary })),
    explain: [...info.annotations].map(([, p]) => ({ vm: p.vm, host: p.host, rejected: p.rejected, score: p.score ?? null })),
    unschedulable: [...info.unschedulable.values()].map((u) => ({ vm: u.vm, summary: u.summary, reasons: u.reasons })),
    moves: info.moves,
    unreachable: Object.fromEntries(info.unreachable),
    orphanHosts: info.orphanHosts,
  };
}
