/**
 * The fleet's part of the plan: where each new VM goes and why (the scheduler's renderers,
 * src/placement/explain.ts), moves, unschedulable VMs, unreachable hosts, removed Hosts.
 */
import { LOCAL_HOST, hostOfKey } from '../model/kinds.js';
import { explainLines, moveLine, placementLine, unschedulableLines } from '../placement/index.js';
import { printable as safe } from '../util/printable.js';
import type { BoundHost, FleetPlanInfo } from './types.js';

/** The plan line's suffix for a resource: its placement (a VM placed this run), else its host. */
export function annotateKey(info: FleetPlanInfo, key: string): string | undefined {
  const p = info.annotations.get(key);
  if (p) return placementLine(p);
  const host = hostOfKey(key);
  return host === LOCAL_HOST ? undefined : `on host ${host}`;
}

/** `--explain` under a placed VM's plan line: each rejected host with its filter, the winner's score parts. */
export function explainKey(info: FleetPlanInfo, key: string): string[] {
  const p = info.annotations.get(key);
  return p ? explainLines(p).map((l) => `explain: ${l}`) : [];
}

/** Lines after the plan: moves (with reasons), unschedulable VMs, unreachable hosts, removed Hosts still owning objects. */
export function fleetLines(info: FleetPlanInfo, opts: { rebalance: boolean; dryRun: boolean }): string[] {
  const lines: string[] = [];
  for (const m of info.moves) lines.push(`  move: ${moveLine(m)}${m.cause === 'rebalance' && opts.dryRun ? ' [proposed]' : ''}`);
  if (opts.rebalance && info.moves.every((m) => m.cause !== 'rebalance')) lines.push('  rebalance: no move proposed');
  for (const u of info.unschedulable.values()) {
    const [first, ...rest] = unschedulableLines(u);
    lines.push(`  ! Unschedulable: ${first}`, ...rest.map((l) => `    ${l}`));
  }
  for (const [host, why] of info.unreachable) lines.push(`  ! HostUnreachable: host ${host}: ${safe(why)}; its resources are not touched this run`);
  for (const o of info.orphanHosts) {
    lines.push(`  ! conflict: ${safe(o.message)}`);
  }
  for (const b of info.bound ?? []) lines.push(`  ${boundLine(b, opts.dryRun)}`);
  return lines;
}

/** From one host to a fleet: the implicit host's records bound to the Host with its identity. */
export function boundLine(b: BoundHost, dryRun: boolean): string {
  const n = `${b.resources} record(s) of the host of the earlier --uri runs`;
  if (!dryRun) return `bound: ${n} are now Host ${b.host}'s (same libvirt host; nothing recreated)`;
  if (b.shown) return `bound: ${n} become Host ${b.host}'s when this is applied (same libvirt host; nothing recreated); the plan above shows them bound`;
  return `note: ${n} become Host ${b.host}'s when this is applied (same libvirt host; nothing recreated). A dry-run on PostgreSQL cannot show that: the plan above shows them as they are recorded now (on no Host), so their objects appear as conflicts`;
}

export function fleetJson(info: FleetPlanInfo): Record<string, unknown> {
  return {
    placements: [...info.annotations].map(([key, p]) => ({ resource: key, vm: p.vm, host: p.host, why: p.why, summary: p.summary, ...(p.warning ? { warning: p.warning } : {}) })),
    explain: [...info.annotations].map(([, p]) => ({ vm: p.vm, host: p.host, rejected: p.rejected, score: p.score ?? null, others: p.others ?? [] })),
    unschedulable: [...info.unschedulable.values()].map((u) => ({ vm: u.vm, summary: u.summary, reasons: u.reasons })),
    moves: info.moves,
    unreachable: Object.fromEntries(info.unreachable),
    orphanHosts: info.orphanHosts.map((o) => ({ host: o.host, objects: o.objects, message: o.message })),
    bound: info.bound ?? [],
  };
}
