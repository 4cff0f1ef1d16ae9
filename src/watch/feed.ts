/**
 * What a watcher tells listeners about its runs and status (the dashboard, src/dashboard/data.ts,
 * subscribes): a run's start with the keys its plan changes, its end, and every status built. The
 * listeners are called synchronously and must be cheap (the dashboard only queues a rebuild).
 * Shared by the single-host controller and the fleet watch's status; generic over the run and
 * status types so that this module imports neither (no import cycle).
 */
import type { Plan } from '../reconcile/plan.js';

/** The last plan a run made, with when and which run. */
export interface PlanRecord {
  runId: string | null;
  time: string;
  plan: Plan;
}

/** What the runner emits. */
export type RunFeedEvent<R> =
  /** A run planned: the keys its plan changes (they show Reconciling until the run ends). */
  | { type: 'runStart'; runId: string | null; keys: string[] }
  /** A run finished (any outcome). */
  | { type: 'runEnd'; run: R };

export type FeedEvent<R, S> = RunFeedEvent<R>
  /** A fresh status was built (after a run, or asked for). */
  | { type: 'status'; status: S };

/** The keys a plan changes (its steps; held and blocked changes do not run now). */
export function planKeys(plan: Plan): string[] {
  return [...new Set(plan.steps.map((s) => s.key))];
}

export class FeedHub<R, S> {
  readonly #listeners = new Set<(e: FeedEvent<R, S>) => void>();

  subscribe(listener: (e: FeedEvent<R, S>) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(e: FeedEvent<R, S>): void {
    for (const l of this.#listeners) l(e);
  }
}
