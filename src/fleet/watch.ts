/**
 * `virtform watch DIR` with Host manifests: the fleet run (`runFleet`) every cycle — at the resync
 * interval, sooner while a host is unreachable: each unreachable host is retried with its own
 * jittered exponential backoff (logged with the delay), reset once it answers. Never rebalances by
 * itself (drains and pin changes still move VMs, as in `reconcile`). The caller holds the writer
 * lease; `signal` stops the loop (the run in flight finishes its steps).
 */
import type { DesiredState } from '../manifest/index.js';
import type { HostId } from '../model/kinds.js';
import type { StateStore } from '../state/index.js';
import { Backoff, sleep, type BackoffPolicy } from '../util/backoff.js';
import type { OpenHost } from './connect.js';
import { runFleet, type EngineOptions, type FleetParts, type FleetResult } from './run.js';

export interface FleetLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface FleetWatchOptions {
  /** The manifests now (read again every cycle), or why they cannot be used. */
  load(): Promise<{ ok: true; state: DesiredState } | { ok: false; errors: string[] }>;
  store: StateStore;
  open: OpenHost;
  parts: FleetParts;
  engine: EngineOptions;
  domainType?: Parameters<typeof runFleet>[0]['domainType'];
  logger: FleetLogger;
  resyncMs: number;
  /** Retry of an unreachable host (and of a failed cycle). */
  retry: BackoffPolicy;
  signal: AbortSignal;
  /** What every cycle loaded (the manifests, or why they cannot be used). */
  onLoad?: (r: { ok: true; state: DesiredState } | { ok: false; errors: string[] }) => void;
  onCycleStart?: () => void;
  onCycle?: (r: FleetResult) => void | Promise<void>;
  /** A cycle that threw (the fleet run itself failed, not one host). */
  onCycleError?: (e: unknown) => void;
}

export async function watchFleet(o: FleetWatchOptions): Promise<void> {
  const hostRetry = new Map<HostId, Backoff>();
  const cycleRetry = new Backoff(o.retry);
  while (!o.signal.aborted) {
    let wait = o.resyncMs;
    const loaded = await o.load();
    o.onLoad?.(loaded);
    if (!loaded.ok) {
      o.logger.error('manifest error', { errors: loaded.errors });
    } else {
      try {
        o.onCycleStart?.();
        const r = await runFleet({
          state: loaded.state, store: o.store, open: o.open, parts: o.parts, domainType: o.domainType,
          engine: { ...o.engine, signal: o.signal }, rebalance: false,
        });
        cycleRetry.reset();
        await o.onCycle?.(r);
        for (const id of [...hostRetry.keys()]) if (!r.unreachable.has(id)) {
          hostRetry.delete(id);
          o.logger.info('host reachable again', { host: id });
        }
        for (const [host, why] of r.unreachable) {
          const b = hostRetry.get(host) ?? new Backoff(o.retry);
          hostRetry.set(host, b);
          const delay = b.next();
          wait = Math.min(wait, delay);
          o.logger.warn('host unreachable; its resources are left as they are (HostUnreachable), retrying', { host, error: why, attempt: b.attempt, retryInMs: delay });
        }
        for (const u of r.unschedulable.values()) o.logger.warn('unschedulable', { vm: u.vm, reason: u.summary });
        for (const c of r.orphanHosts) o.logger.warn('host removal conflict', { host: c.host, message: c.message });
        const failed = r.run?.applied ? [...r.run.applied.failed] : [];
        o.logger.info('fleet run', {
          outcome: r.run?.outcome ?? 'no host reachable', hosts: loaded.state.hosts.length, unreachable: [...r.unreachable.keys()],
          steps: r.run?.plan.steps.length ?? 0, failed: failed.length, ms: r.run?.durationMs ?? 0,
          ...(failed.length > 0 ? { errors: failed.slice(0, 10).map(([key, error]) => `${key}: ${error}`) } : {}),
        });
        if (failed.length > 0) wait = Math.min(wait, cycleRetry.next());
      } catch (e) {
        o.onCycleError?.(e);
        const delay = cycleRetry.next();
        wait = Math.min(wait, delay);
        o.logger.error('fleet run failed; retrying', { error: e instanceof Error ? e.message : String(e), retryInMs: delay });
      }
    }
    await sleep(wait, o.signal);
  }
}
