/**
 * `virtform reconcile DIR` when the manifests declare Hosts: the fleet run (src/fleet/). Same
 * flags, lease and output as the one-host run, plus where each VM goes and why.
 *
 * Exit codes: 0 converged; 1 a host was unreachable, a VM is unschedulable, a Host manifest was
 * removed while virtform owns objects on it, or the apply failed (the other hosts still converged);
 * 2 invalid input (`--uri` with Host manifests, a refused transport). With `--dry-run`, 1 only for an
 * unreachable host (3 with --detailed-exitcode when changes are pending).
 */
import type { DesiredState } from '../../manifest/index.js';
import { openHost } from '../../reconcile/adapters/libvirt-host.js';
import { faultWrapperFromEnv, crashAtBoundary } from '../../reconcile/faults.js';
import { imageCacheFor } from '../../reconcile/images.js';
import type { Lease, StateStore } from '../../state/index.js';
import { refusedTransports } from '../../fleet/connect.js';
import { fleetParts } from '../../fleet/parts.js';
import { runFleet } from '../../fleet/run.js';
import { annotateKey, explainKey, fleetJson, fleetLines } from '../../fleet/render.js';
import type { FleetPlanInfo } from '../../fleet/types.js';
import type { HostDefinition } from '../../fleet/contract.js';
import { EXIT, retryPolicy } from '../common.js';
import { brakeLines, planToJson, renderApplyEvent, renderPlan, summaryLine, type Style } from '../render.js';
import { ProgressLine } from '../progress.js';
import type { GitDesired } from '../git.js';
import type { MaxDeletions } from '../../reconcile/safety.js';
import { waitAfterApply, type WaitReport } from '../wait.js';
import { LOCAL_HOST } from '../../model/kinds.js';

/** The flags of `reconcile` a fleet run reads (a part of ReconcileFlags). */
export interface FleetFlags {
  uriGiven?: boolean; wait?: boolean; insecure?: boolean; json?: boolean; dryRun?: boolean; detailedExitcode?: boolean;
  explain?: boolean; rebalance?: boolean; maxMoves?: number; domainType?: HostDefinition['domainType'];
  allowDataLoss?: boolean; maxDeletions?: MaxDeletions; ignoreSuspend?: boolean; concurrency: number;
  maxAttempts: number; retryDelay: number; shutdownTimeout: number; downloadTimeout?: number;
  /** Hot-plug (issue 24): seconds a guest gets to complete a live detach. */
  detachTimeout?: number;
  /** `--move-bandwidth`, bytes per second: the fleet is where cold moves happen. */
  moveBandwidth?: number;
  /** `--wait-timeout` (seconds, default 300) and `--wait-for` (these VMs only) of `--wait`. */
  waitTimeout?: number;
  waitFor?: string[];
}

export type FleetState = DesiredState;

/** Why the flags cannot be used with Host manifests (exit 2), or undefined. */
export function fleetRefusal(hosts: readonly HostDefinition[], o: FleetFlags): string | undefined {
  const names = hosts.map((h) => h.id).join(', ');
  if (o.uriGiven) {
    return `--uri (or VIRTFORM_URI) cannot be used with Host manifests: the manifests name the hosts (Host ${names}) ` +
      `and each is reached at its spec.uri; drop --uri, or remove the Host manifests to manage one host`;
  }
  const refused = refusedTransports(hosts, o.insecure === true);
  if (refused.length > 0) return refused.map((r) => r.message).join('; ');
  return undefined;
}

/**
 * The engine options `reconcile` takes from its flags, the same for one host and for a fleet (a
 * flag added here reaches both).
 */
export function engineFlagOptions(o: FleetFlags, c: { dataDir: string | undefined; writer: Lease | undefined; err: (s: string) => void }) {
  const crashAt = Number(process.env.VIRTFORM_TEST_CRASH_AT ?? 0);
  const writer = c.writer;
  return {
    dryRun: o.dryRun,
    allowDataLoss: o.allowDataLoss === true,
    maxDeletions: o.maxDeletions,
    ignoreSuspend: o.ignoreSuspend === true,
    concurrency: o.concurrency,
    retry: retryPolicy(o),
    shutdownTimeoutMs: o.shutdownTimeout * 1000,
    ...(o.detachTimeout !== undefined ? { detachTimeoutMs: o.detachTimeout * 1000 } : {}),
    ...(o.moveBandwidth !== undefined ? { moveBandwidth: o.moveBandwidth } : {}),
    images: imageCacheFor(c.dataDir, { timeoutMs: (o.downloadTimeout ?? 30) * 1000 }),
    boundary: crashAt > 0 ? crashAtBoundary(crashAt, (l) => c.err(`[test] crashing at boundary ${crashAt}: ${l}\n`)) : undefined,
    ...(writer ? { guard: () => writer.refusal() } : {}),
  };
}

interface FleetCtx {
  store: StateStore;
  out: (s: string) => void;
  err: (s: string) => void;
  style: Style;
  abort: AbortController;
  stopTimeoutMs: number;
  writer: Lease | undefined;
  git: Extract<GitDesired, { ok: true }> | undefined;
}

export async function reconcileFleet(state: FleetState, o: FleetFlags, c: FleetCtx): Promise<number> {
  const { out, err, style } = c;
  const wrapper = faultWrapperFromEnv();
  const progress = new ProgressLine({ write: err, isTTY: process.stderr.isTTY === true }, o.json === true);
  let info: FleetPlanInfo | undefined;
  const writer = c.writer;
  const waiting = o.wait === true && o.dryRun !== true;
  const r = await runFleet({
    state, store: c.store, parts: fleetParts(), keepConnections: waiting,
    open: (uri, opts) => openHost(uri, { domainType: opts.domainType }),
    domainType: o.domainType, rebalance: o.rebalance === true, maxMoves: o.maxMoves ?? 1,
    ...(wrapper ? { wrap: (p) => wrapper(p) } : {}),
    onUnreachable: (host, why) => err(`virtform: host ${host} unreachable: ${why}; its resources are left as they are (HostUnreachable), the other hosts converge\n`),
    onPlaced: (i) => {
      info = i;
    },
    engine: {
      ...engineFlagOptions(o, { dataDir: c.store.dataDir, writer: c.writer, err }),
      signal: c.abort.signal,
      stopTimeoutMs: c.stopTimeoutMs,
      onPlan: (plan) => {
        if (o.json) return;
        const i = info;
        out(renderPlan(plan, style, i ? { suffix: (key) => annotateKey(i, key), ...(o.explain ? { lines: (key) => explainKey(i, key) } : {}) } : undefined));
        const extra = i ? fleetLines(i, { rebalance: o.rebalance === true, dryRun: o.dryRun === true }) : [];
        if (extra.length > 0) out(`${extra.join('\n')}\n`);
        if (!o.dryRun && !plan.noop) out('\n');
      },
      onEvent: (e) => {
        if (progress.handle(e)) return;
        const line = renderApplyEvent(e, style);
        progress.clear();
        if (line) (o.json ? err : out)(`${line}\n`);
      },
    },
  });
  const result = r.run;
  if (!info) info = { annotations: r.annotations, moves: r.moves, unschedulable: r.unschedulable, unreachable: r.unreachable, orphanHosts: r.orphanHosts, bound: r.bound };
  if (!result && !o.json) {
    out(`${fleetLines(info, { rebalance: o.rebalance === true, dryRun: o.dryRun === true }).join('\n')}\n`);
  }
  if (c.git && !o.dryRun && result) {
    await c.git.sync.recordRun(c.git.commit, result.outcome === 'noop' ? 'succeeded' : result.outcome, result.revisionId);
  }
  const problems = [
    ...[...r.unreachable].map(([h, why]) => `host ${h} unreachable (${why})`),
    ...(o.dryRun ? [] : [...r.unschedulable.values()].map((u) => `VM ${u.vm} unschedulable (${u.summary})`)),
    ...(o.dryRun ? [] : r.orphanHosts.map((x) => x.message)),
  ];
  let wait: { ok: boolean; report: WaitReport } | undefined;
  const printJson = (): void => {
    if (!o.json) return;
    out(`${JSON.stringify({
      runId: result?.runId ?? null, dryRun: o.dryRun === true, outcome: result?.outcome ?? 'failed',
      plan: result ? planToJson(result.plan) : null,
      fleet: fleetJson(info!),
      ...(c.git ? { git: c.git.sync.status() } : {}),
      ...(o.wait ? { wait: wait?.report ?? null } : {}),
      held: Object.fromEntries(result?.held ?? []),
      suspension: result?.suspension ?? null,
      mutations: result?.mutations ?? 0, durationMs: result?.durationMs ?? 0,
      steps: result?.applied?.outcomes.map((s) => ({
        resource: s.step.key, host: s.step.host, op: s.step.op.op, status: s.status, attempts: s.attempts, ms: s.ms, error: s.error ?? null,
      })) ?? [],
    }, null, 2)}\n`);
  };
  try {
    if (result?.suspension) err(`virtform: state DB ${c.store.path} is suspended; ${result.outcome === 'suspended' ? 'nothing was applied' : 'applying anyway (--ignore-suspend)'}\n`);
    if (o.dryRun) {
      printJson();
      if (r.unreachable.size > 0) {
        err(`virtform: ${problems.join('; ')}\n`);
        return EXIT.failure;
      }
      return o.detailedExitcode && result && !result.plan.noop ? EXIT.changes : EXIT.ok;
    }
    if (result?.outcome === 'braked') {
      printJson();
      err(`virtform: refused by the mass-deletion brake; nothing was applied\n${brakeLines(result.plan, { color: false }).join('\n')}\n`);
      return EXIT.failure;
    }
    if (result && !o.json && !result.plan.noop && result.applied) {
      const ok = result.applied.outcomes.filter((s) => s.status === 'succeeded').length;
      const verdict = result.outcome === 'interrupted' ? 'interrupted' : result.outcome === 'failed' ? 'finished with errors'
        : result.outcome === 'held' ? 'incomplete' : 'complete';
      out(`\nApply ${verdict}: ${ok} step(s) succeeded, ${result.applied.failed.size} resource(s) failed, ` +
        `${result.applied.skipped.size} skipped, ${result.plan.blocked.size} blocked (${(result.durationMs / 1000).toFixed(1)}s).\n`);
      if (result.plan.blocked.size > 0 || result.held.size > 0) out(`${summaryLine(result.plan)}\n`);
    }
    if (problems.length > 0) err(`virtform: the fleet did not fully converge: ${problems.join('; ')}\n`);
    const failed = !result || ['failed', 'interrupted', 'held', 'suspended'].includes(result.outcome);
    // --wait: each reachable host's VMs declared running, waited for at once (src/cli/wait.ts), after
    // a successful (or converged) apply; the writer lease is not needed for it.
    if (waiting && result && (result.outcome === 'succeeded' || result.outcome === 'noop') && r.connections) {
      await writer?.release();
      const records = await c.store.resources.list();
      const sets = [...r.connections.ports].map(([host, port]) => ({
        host, port, declared: r.desired.resources.filter((x) => x.host === host), records: records.filter((x) => (x.host ?? LOCAL_HOST) === host),
      }));
      wait = await waitAfterApply(sets, { timeoutSeconds: o.waitTimeout ?? 300, signal: c.abort.signal, ...(o.waitFor ? { only: o.waitFor } : {}) }, {
        out, err, json: o.json === true, progress: o.json ? process.stderr : process.stdout,
      });
    } else if (waiting) {
      err(`virtform: --wait: not waiting for addresses, the apply did not succeed (${result?.outcome ?? 'no host reached'})\n`);
    }
    printJson();
    if (wait && !wait.ok) return EXIT.failure;
    return failed || problems.length > 0 ? EXIT.failure : EXIT.ok;
  } finally {
    await r.connections?.close();
  }
}
