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

/** Run the wait; returns the report (for --json) and whether it succeeded. */
export async function waitAfterApply(
  host: HostPort, declared: readonly DesiredResource[], records: readonly ResourceRecord[],
  o: { timeoutSeconds: number; signal?: AbortSignal; only?: readonly string[] }, io: WaitIo,
): Promise<{ ok: boolean; report: WaitReport }> {
  const vms = declared.filter((d) => kindOf(d.kind).guest?.declaredRunning(d))
    .map((d) => d.name).filter((n) => !o.only || o.only.includes(n)).sort();
  const managed = managedNetworks(records, declared);
  // The NICs the running domains really have (live definition): one read per VM, once.
  const targets: AddressTarget[] = await Promise.all(vms.map(async (name) => {
    const live = await host.getRunningDomain(name);
    const startedAt = recordedStart(records.find((r) => isGuestKind(r.kind) && r.name === name));
    return { name, nics: (live?.nics ?? []).map((n) => ({ mac: n.mac.toLowerCase(), network: n.network })), ...(startedAt ? { startedAt } : {}) };
  }));
  const text = (s: string): void => { if (!io.json) io.out(s); };
  if (targets.length === 0) {
    text('\nNo VM is declared running: nothing to wait for.\n');
    return { ok: true, report: emptyReport(o.timeoutSeconds, 'nothing-to-wait-for') };
  }
  text(`\nWaiting up to ${o.timeoutSeconds}s for the addresses of ${targets.length} VM(s): ${targets.map((t) => t.name).join(', ')}\n`);

  const tty = io.progress?.isTTY === true ? io.progress : undefined;
  let shown = false;
  const result = await waitForAddresses(host, targets, {
    timeoutMs: o.timeoutSeconds * 1000,
    managed,
    signal: o.signal,
    onProgress: (p) => {
      if (!tty || p.waiting.length === 0) return;
      tty.write(`\r\x1b[K  ${(p.elapsedMs / 1000).toFixed(0)}s: waiting for ${p.waiting.join(', ')}`);
      shown = true;
    },
  });
  if (shown) tty!.write('\r\x1b[K');

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
        return `${v} (${nics.map((n) => `${n.mac} on ${n.network}`).join(', ')})`;
      });
      io.err(`virtform: timed out after ${o.timeoutSeconds}s waiting for an address: ${which.join('; ')}\n`);
      return { ok: false, report };
    }
    case 'interrupted':
      io.err(`virtform: interrupted while waiting for addresses (still waiting: ${result.waiting.join(', ') || 'none'})\n`);
      return { ok: false, report };
  }
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
