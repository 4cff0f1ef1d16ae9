/**
 * `reconcile --wait [--wait-timeout S]`: after a successful apply, wait until every VM declared
 * `running` has an address on each NIC attached to a network with DHCP (src/status/wait.ts), print
 * progress on a terminal, then the addresses. Exit 1 on timeout (naming the VMs without one) or as
 * soon as such a VM is not running.
 */
import type { DesiredResource } from '../reconcile/desired.js';
import type { HostPort } from '../reconcile/ports.js';
import type { ResourceRecord } from '../state/index.js';
import {
  addressLabel, managedNetworks, recordedStart, waitForAddresses, type AddressTarget, type NicAddresses, type WaitResult,
} from '../status/index.js';
import { isGuestKind, kindOf } from '../reconcile/kinds/index.js';

export interface WaitReport {
  outcome: WaitResult['outcome'] | 'nothing-to-wait-for';
  timeoutSeconds: number;
  elapsedMs: number;
  polls: number;
  /** VMs waited for. */
  vms: string[];
  /** VMs without an address at the end (timeout). */
  waiting: string[];
  /** VMs that are not running, with the reason. */
  failures: { vm: string; reason: string }[];
  /** NICs not waited for: their network has no DHCP. */
  notWaited: { vm: string; mac: string; network: string }[];
  errors: string[];
  /** Per VM, its NICs with their addresses and where they came from. */
  addresses: Record<string, NicAddresses[] | null>;
}

export interface WaitIo {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Progress line (rewritten in place) on this stream, when it is a terminal; undefined: none. */
  progress?: NodeJS.WriteStream;
  json: boolean;
}

/** The VMs of one host to wait for: the host, what is declared on it and its records. */
export interface WaitSet {
  /** The Host's id (a fleet); undefined for the one host of `--uri`. */
  host?: string;
  port: HostPort;
  declared: readonly DesiredResource[];
  records: readonly ResourceRecord[];
}

/**
 * Run the wait; returns the report (for --json) and whether it succeeded. Several hosts (a fleet)
 * are waited for at once, each with its own polls; a VM that stops on one ends the whole wait at
 * once (the others are interrupted), as on one host.
 */
export async function waitAfterApply(
  sets: readonly WaitSet[], o: { timeoutSeconds: number; signal?: AbortSignal; only?: readonly string[] }, io: WaitIo,
): Promise<{ ok: boolean; report: WaitReport }> {
  const perHost = await Promise.all(sets.map(async (set) => {
    const vms = set.declared.filter((d) => kindOf(d.kind).guest?.declaredRunning(d))
      .map((d) => d.name).filter((n) => !o.only || o.only.includes(n)).sort();
    // The NICs the running domains really have (live definition): one read per VM, once.
    const targets: AddressTarget[] = await Promise.all(vms.map(async (name) => {
      const live = await set.port.getRunningDomain(name);
      const startedAt = recordedStart(set.records.find((r) => isGuestKind(r.kind) && r.name === name));
      return { name, nics: (live?.nics ?? []).map((n) => ({ mac: n.mac.toLowerCase(), network: n.network })), ...(startedAt ? { startedAt } : {}) };
    }));
    return { set, targets, managed: managedNetworks(set.records, set.declared) };
  }));
  const targets = perHost.flatMap((h) => h.targets);
  const hostOf = new Map(perHost.flatMap((h) => h.targets.map((t) => [t.name, h.set.host] as const)));
  const label = (vm: string): string => (hostOf.get(vm) !== undefined ? `${vm} (host ${hostOf.get(vm)})` : vm);
  const text = (s: string): void => { if (!io.json) io.out(s); };
  if (targets.length === 0) {
    text('\nNo VM is declared running: nothing to wait for.\n');
    return { ok: true, report: emptyReport(o.timeoutSeconds, 'nothing-to-wait-for') };
  }
  text(`\nWaiting up to ${o.timeoutSeconds}s for the addresses of ${targets.length} VM(s): ${targets.map((t) => label(t.name)).join(', ')}\n`);

  const tty = io.progress?.isTTY === true ? io.progress : undefined;
  let shown = false;
  // One host's VM not running ends every host's wait (the user's signal too).
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.signal?.aborted) stop.abort();
  const waiting = new Map<string, string[]>();
  const results = await Promise.all(perHost.filter((h) => h.targets.length > 0).map(async (h) => {
    const r = await waitForAddresses(h.set.port, h.targets, {
      timeoutMs: o.timeoutSeconds * 1000,
      managed: h.managed,
      signal: stop.signal,
      onProgress: (p) => {
        waiting.set(h.set.host ?? '', p.waiting);
        const all = [...waiting.values()].flat();
        if (!tty || all.length === 0) return;
        tty.write(`\r\x1b[K  ${(p.elapsedMs / 1000).toFixed(0)}s: waiting for ${all.map(label).join(', ')}`);
        shown = true;
      },
    });
    if (r.outcome === 'not-running') stop.abort();
    return r;
  }));
  o.signal?.removeEventListener('abort', onAbort);
  if (shown) tty!.write('\r\x1b[K');
  const result = mergeResults(results, o.signal?.aborted === true);

  const notWaited: WaitReport['notWaited'] = [];
  const addresses: WaitReport['addresses'] = {};
  for (const t of targets) {
    const a = result.vms.get(t.name);
    addresses[t.name] = a?.nics ?? null;
    for (const n of a?.nics ?? []) if (!n.dhcp) notWaited.push({ vm: t.name, mac: n.mac, network: n.network });
  }
  const report: WaitReport = {
    outcome: result.outcome, timeoutSeconds: o.timeoutSeconds, elapsedMs: result.elapsedMs, polls: result.polls,
    vms: targets.map((t) => t.name), waiting: result.waiting, failures: result.failures, notWaited, errors: result.errors, addresses,
  };

  for (const n of notWaited) text(`  VirtualMachine/${n.vm}: NIC ${n.mac} on ${n.network} is not waited for: the network has no DHCP\n`);
  for (const t of targets) if (t.nics.length === 0 && result.vms.get(t.name)?.running) text(`  VirtualMachine/${t.name}: no NIC, nothing to wait for\n`);
  if (result.outcome !== 'not-running') text(renderAddresses(targets, result));
  for (const e of result.errors) io.err(`virtform: addresses: ${e}\n`);
  const secs = (result.elapsedMs / 1000).toFixed(1);
  switch (result.outcome) {
    case 'ready':
      text(`All ${targets.length} VM(s) have their addresses (${secs}s).\n`);
      return { ok: true, report };
    case 'not-running':
      for (const f of result.failures) io.err(`virtform: ${f.reason}\n`);
      return { ok: false, report };
    case 'timeout': {
      const which = result.waiting.map((v) => {
        const nics = (result.vms.get(v)?.nics ?? []).filter((n) => n.dhcp && n.addresses.length === 0);
        return `${v} (${nics.map((n) => `${n.mac} on ${n.network}`).join(', ')}${hostOf.get(v) !== undefined ? `; host ${hostOf.get(v)}` : ''})`;
      });
      io.err(`virtform: timed out after ${o.timeoutSeconds}s waiting for an address: ${which.join('; ')}\n`);
      return { ok: false, report };
    }
    case 'interrupted':
      io.err(`virtform: interrupted while waiting for addresses (still waiting: ${result.waiting.join(', ') || 'none'})\n`);
      return { ok: false, report };
  }
}

/**
 * One result of several hosts' waits: not-running if any VM stopped (the others were interrupted
 * for it), interrupted by the user's signal, timeout if any host timed out, else ready.
 */
function mergeResults(results: readonly WaitResult[], userAborted: boolean): WaitResult {
  const outcomes = new Set(results.map((r) => r.outcome));
  const outcome: WaitResult['outcome'] = outcomes.has('not-running') ? 'not-running'
    : userAborted || outcomes.has('interrupted') ? 'interrupted' : outcomes.has('timeout') ? 'timeout' : 'ready';
  return {
    outcome,
    elapsedMs: Math.max(0, ...results.map((r) => r.elapsedMs)),
    polls: results.reduce((n, r) => n + r.polls, 0),
    vms: new Map(results.flatMap((r) => [...r.vms])),
    waiting: results.flatMap((r) => r.waiting),
    failures: results.flatMap((r) => r.failures),
    errors: results.flatMap((r) => r.errors),
  };
}

function emptyReport(timeoutSeconds: number, outcome: WaitReport['outcome']): WaitReport {
  return { outcome, timeoutSeconds, elapsedMs: 0, polls: 0, vms: [], waiting: [], failures: [], notWaited: [], errors: [], addresses: {} };
}

/** One line per NIC: `VirtualMachine/web-1  52:54:00:aa:bb:cc  lab-net  192.168.251.120/24 (lease)`. */
export function renderAddresses(targets: readonly AddressTarget[], result: Pick<WaitResult, 'vms'>): string {
  const rows: string[][] = [];
  for (const t of targets) {
    for (const n of result.vms.get(t.name)?.nics ?? []) {
      rows.push([`VirtualMachine/${t.name}`, n.mac, n.network, n.addresses.length > 0 ? n.addresses.map(addressLabel).join(', ') : n.dhcp ? 'none yet' : '- (no DHCP)']);
    }
  }
  if (rows.length === 0) return '';
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  return `Addresses:\n${rows.map((r) => `  ${r.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c)).join('  ')}`).join('\n')}\n`;
}
