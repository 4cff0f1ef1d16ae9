/**
 * What the cold-move suites share (test/fleet/moves*.test.ts): the desired state with a VM and its
 * volumes on one host and the pools on every host (built per host with `buildDesired` +
 * `mergeDesired`: the engine moves a VM from the state DB's record and the desired state alone,
 * whatever decided its host), and one reconcile run over both hosts, in process or in a child
 * (`moves-run.ts`, for the SIGKILL crash matrix).
 */
import { loadManifests, type DesiredState } from '../../src/manifest/index.js';
import { buildDesired, mergeDesired, type Desired } from '../../src/reconcile/desired.js';
import { reconcile, type ReconcileResult } from '../../src/reconcile/engine.js';
import { openHost } from '../../src/reconcile/adapters/libvirt-host.js';
import { openStateStore } from '../../src/state/index.js';
import type { ApplyEvent } from '../../src/reconcile/apply.js';
import type { HostPort } from '../../src/reconcile/ports.js';

export interface MoveRun {
  /** Manifest folder. */
  dir: string;
  db: string;
  /** Host id → libvirt URI. */
  hosts: Record<string, string>;
  /** Where the VMs and their volumes are declared (the pools: on every host). */
  vmHost: string;
  crashAt?: number;
  dryRun?: boolean;
  moveBandwidth?: number;
  maxDeletions?: number | 'all';
  allowDataLoss?: boolean;
}

/** The summary a run prints (the child) or returns (in process). */
export interface MoveRunResult {
  outcome: ReconcileResult['outcome'];
  summary: ReconcileResult['plan']['summary'];
  brake: ReconcileResult['plan']['brake'];
  changes: { key: string; action: string; reason: string; move?: unknown; steps: string[] }[];
  steps: string[];
  blocked: [string, string][];
  held: [string, string][];
  failed: [string, string][];
  /** Step key:op → ms it took. */
  ms: Record<string, number>;
  progress: number;
}

export async function desiredOn(dir: string, vmHost: string, hosts: string[]): Promise<Desired> {
  const r = await loadManifests(dir);
  if (!r.ok) throw new Error(`manifests invalid: ${r.errors.map((e) => `${e.file}:${e.line}:${e.col} ${e.message}`).join('; ')}`);
  const poolsOnly: DesiredState = { ...r.desired, volumes: [], vms: [], networks: [] };
  return mergeDesired(hosts.map((h) => buildDesired(h === vmHost ? r.desired : poolsOnly, h)));
}

export async function runMove(o: MoveRun, boundary?: (label: string) => void): Promise<MoveRunResult> {
  const ports = new Map<string, HostPort & { close(): Promise<void> }>();
  for (const [id, uri] of Object.entries(o.hosts)) ports.set(id, await openHost(uri));
  const store = await openStateStore(o.db);
  const ms: Record<string, number> = {};
  let progress = 0;
  try {
    const res = await reconcile({
      hosts: ports, store, desired: await desiredOn(o.dir, o.vmHost, Object.keys(o.hosts)),
      dryRun: o.dryRun ?? false, gracefulStop: false, shutdownTimeoutMs: 0,
      retry: { maxAttempts: 2, baseDelayMs: 20, maxDelayMs: 100 },
      ...(o.moveBandwidth ? { moveBandwidth: o.moveBandwidth } : {}),
      ...(o.maxDeletions !== undefined ? { maxDeletions: o.maxDeletions } : {}),
      allowDataLoss: o.allowDataLoss ?? false,
      ...(boundary ? { boundary } : {}),
      onEvent: (e: ApplyEvent) => {
        if (e.type === 'done') ms[`${e.outcome.step.key}:${e.outcome.step.op.op}`] = e.outcome.ms;
        if (e.type === 'progress') progress += 1;
      },
    });
    return {
      outcome: res.outcome, summary: res.plan.summary, brake: res.plan.brake,
      changes: res.plan.changes.map((c) => ({ key: c.key, action: c.action, reason: c.reason, ...(c.move ? { move: c.move } : {}), steps: c.steps.map((s) => s.op) })),
      steps: res.plan.steps.map((s) => `${s.key}:${s.op.op}`),
      blocked: [...res.plan.blocked], held: [...res.plan.held], failed: [...(res.applied?.failed ?? [])],
      ms, progress,
    };
  } finally {
    for (const p of ports.values()) await p.close();
    await store.close();
  }
}
