/**
 * `reconcile --wait`: wait until every given running VM has an address on each NIC attached to a
 * network with DHCP (src/status/addresses.ts says which NICs count and where addresses come from).
 *
 * Each poll makes one host snapshot (is every VM still running?) and one DHCP-lease read per
 * virtform network the VMs use (plus the interface queries of VMs with NICs on other DHCP
 * networks); polls back off from 0.5 s to 2 s. Once every VM is ready, NICs on networks without
 * DHCP are asked about once (agent, ARP), for the report. libvirt 9.0 has no event for a new DHCP lease (its network events are
 * lifecycle only; VIR_NETWORK_EVENT_ID_METADATA_CHANGE, libvirt 9.8, is about metadata), so leases
 * are polled. Domain lifecycle events are subscribed to when the host offers them: a VM that stops
 * or crashes ends the wait at once ("VM x is shut off; it will not get an address"), without
 * waiting for the timeout, and so does a VM found not running at a poll.
 */
import type { DomainLifecycleEvent, HostPort, HostSnapshot } from '../reconcile/ports.js';
import { observeAddresses, type AddressTarget, type VmAddresses } from './addresses.js';

export interface WaitOptions {
  timeoutMs: number;
  /** virtform's networks with whether each has DHCP (managedNetworks()). */
  managed: ReadonlyMap<string, boolean>;
  /** After every poll: the VMs still waited for. */
  onProgress?: (p: { waiting: string[]; ready: string[]; elapsedMs: number; polls: number }) => void;
  signal?: AbortSignal;
  /** First and largest delay between polls (default 500 ms and 2 s). */
  pollMinMs?: number;
  pollMaxMs?: number;
  now?: () => number;
}

export interface WaitFailure {
  vm: string;
  reason: string;
}

export interface WaitResult {
  /** ready: every VM has its addresses; timeout; not-running: a VM stopped or crashed; interrupted: the signal fired. */
  outcome: 'ready' | 'timeout' | 'not-running' | 'interrupted';
  elapsedMs: number;
  polls: number;
  /** The last addresses seen, per VM. */
  vms: Map<string, VmAddresses>;
  /** VMs still without an address on a waited-for NIC at the end. */
  waiting: string[];
  /** VMs that are not running (outcome not-running). */
  failures: WaitFailure[];
  /** Problems that left some addresses unknown at the last poll. */
  errors: string[];
}

type WaitHost = Pick<HostPort, 'snapshot' | 'networkLeases' | 'domainInterfaceAddresses' | 'definitions' | 'subscribeDomainEvents'>;

/** virDomainEventStoppedDetailType, as a reason. */
const STOPPED_DETAIL: Record<number, string> = {
  0: 'shut off (the guest shut down)', 1: 'shut off (destroyed)', 2: 'shut off (crashed)', 3: 'shut off (migrated)',
  4: 'shut off (saved)', 5: 'shut off (QEMU failed)', 6: 'shut off (restored from a snapshot)',
};

export async function waitForAddresses(host: WaitHost, targets: readonly AddressTarget[], o: WaitOptions): Promise<WaitResult> {
  const now = o.now ?? Date.now;
  const start = now();
  const deadline = start + o.timeoutMs;
  const minDelay = o.pollMinMs ?? 500;
  const maxDelay = o.pollMaxMs ?? 2000;
  const names = new Set(targets.map((t) => t.name));
  const lastEvent = new Map<string, DomainLifecycleEvent>();
  let wake: (() => void) | undefined;
  let unsubscribe: (() => Promise<void>) | undefined;
  let subscribed = false;
  let onEvent: (() => void) | undefined;
  try {
    unsubscribe = await host.subscribeDomainEvents((e) => {
      if (!names.has(e.name)) return;
      lastEvent.set(e.name, e);
      if (e.event === 'stopped' || e.event === 'crashed' || e.event === 'shutdown') wake?.();
      onEvent?.();
    });
    subscribed = true;
  } catch { // safe-catch: no events (a driver or proxy without them): the polls still see a stopped VM
    // No events (a driver or proxy without them): the polls still see a stopped VM.
  }
  /** Resolves when cond() holds (checked at each event) or after ms. */
  const sleepUntil = (cond: () => boolean, ms: number): Promise<void> => new Promise<void>((resolve) => {
    const timer = setTimeout(finish, ms);
    function finish(): void {
      clearTimeout(timer);
      onEvent = undefined;
      resolve();
    }
    onEvent = () => { if (cond()) finish(); };
    if (cond()) finish();
  });
  const seenRunning = new Set<string>();
  const noAgent = new Set<string>();
  let polls = 0;
  let delay = minDelay;
  let vms = new Map<string, VmAddresses>();
  let errors: string[] = [];
  const result = (outcome: WaitResult['outcome'], failures: WaitFailure[] = []): WaitResult => ({
    outcome, elapsedMs: now() - start, polls, vms, failures, errors,
    waiting: targets.filter((t) => !vms.get(t.name)?.ready).map((t) => t.name),
  });
  try {
    for (;;) {
      if (o.signal?.aborted) return result('interrupted');
      polls += 1;
      const snapshot: HostSnapshot = await host.snapshot();
      const failures = targets.filter((t) => isDown(snapshot, t));
      for (const t of targets) if (!isDown(snapshot, t)) seenRunning.add(t.name);
      // While waiting, only the NICs waited for are asked about; once all have one, every NIC (for the report).
      let report = await observeAddresses(host, snapshot, targets, o.managed, { noAgent, waitedOnly: true });
      vms = report.vms;
      errors = report.errors;
      if (failures.length > 0) {
        // The lifecycle event that says why (destroyed, crashed…) is dispatched by libvirtd after the
        // state change, so a poll can see the VM stopped before its event arrives: give it a moment.
        // Only for a VM seen running earlier in this wait: one already down at the first poll has no event coming.
        const pending = (t: AddressTarget): boolean => seenRunning.has(t.name) && isDown(snapshot, t) && !hasStopEvent(lastEvent, t.name);
        if (subscribed && targets.some(pending)) {
          await sleepUntil(() => !targets.some(pending), EVENT_GRACE_MS);
        }
        return result('not-running', notRunning(snapshot, targets, lastEvent));
      }
      const waiting = targets.filter((t) => !vms.get(t.name)?.ready).map((t) => t.name);
      o.onProgress?.({ waiting, ready: targets.filter((t) => vms.get(t.name)?.ready).map((t) => t.name), elapsedMs: now() - start, polls });
      if (waiting.length === 0) {
        if (targets.some((t) => t.nics.some((n) => !o.managed.get(n.network)))) {
          report = await observeAddresses(host, snapshot, targets, o.managed, { noAgent });
          vms = report.vms;
          errors = report.errors;
        }
        return result('ready');
      }
      const left = deadline - now();
      if (left <= 0) return result('timeout');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(delay, left));
        function done(): void {
          clearTimeout(timer);
          o.signal?.removeEventListener('abort', done);
          wake = undefined;
          resolve();
        }
        wake = done;
        o.signal?.addEventListener('abort', done, { once: true });
      });
      delay = Math.min(delay * 2, maxDelay);
    }
  } finally {
    // safe-catch: unsubscribing on the way out; the wait result is already decided
    await unsubscribe?.().catch(() => undefined);
  }
}

/** How long a VM seen stopped may wait for the lifecycle event that gives the reason. */
const EVENT_GRACE_MS = 1500;

function isDown(snapshot: HostSnapshot, t: AddressTarget): boolean {
  return !snapshot.domains.find((x) => x.name === t.name)?.active;
}

function hasStopEvent(events: ReadonlyMap<string, DomainLifecycleEvent>, name: string): boolean {
  const e = events.get(name)?.event;
  return e === 'stopped' || e === 'crashed';
}

function notRunning(snapshot: HostSnapshot, targets: readonly AddressTarget[], events: ReadonlyMap<string, DomainLifecycleEvent>): WaitFailure[] {
  const out: WaitFailure[] = [];
  for (const t of targets) {
    const d = snapshot.domains.find((x) => x.name === t.name);
    if (d?.active) continue;
    const e = events.get(t.name);
    const state = !d ? 'is gone from the host'
      : e?.event === 'crashed' ? 'crashed'
        : `is ${e?.event === 'stopped' ? (STOPPED_DETAIL[e.detail] ?? 'shut off') : 'shut off'}`;
    out.push({ vm: t.name, reason: `VM ${t.name} ${state}; it will not get an address` });
  }
  return out;
}
