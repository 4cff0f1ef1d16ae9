/**
 * The scheduler's working state: each host's usage and each spread constraint's counts per
 * domain, updated as VMs are placed and unplaced (O(constraints a VM counts in) per change).
 */
import { formatSize } from '../manifest/size.js';
import { matchesSelector } from '../model/hosts.js';
import type { LabelSelector, PlacementHost, PlacementRequest, SpreadBy } from './types.js';

export { matchesSelector };

export const size = (bytes: number): string => formatSize(Math.max(0, Math.round(bytes)));

/** What a host can hold: (capacity − reserved) × overcommit ratio (reserved is the host's own, never overcommitted). */
export function allocatable(capacity: number, reserved: number, ratio: number): number {
  return Math.max(0, capacity - reserved) * (ratio > 0 ? ratio : 1);
}

export class HostState {
  readonly allocMem: number;
  readonly allocCpu: number;
  mem = 0;
  cpu = 0;
  vms = 0;
  readonly disk = new Map<string, number>();

  constructor(readonly h: PlacementHost) {
    this.allocMem = allocatable(h.capacity.memory, h.reserved.memory, h.overcommit.memory);
    this.allocCpu = allocatable(h.capacity.vcpus, h.reserved.vcpus, h.overcommit.cpu);
  }

  get id(): string { return this.h.id; }
  get freeMem(): number { return this.allocMem - this.mem; }
  get freeCpu(): number { return this.allocCpu - this.cpu; }
  diskFree(pool: string): number | undefined {
    const cap = this.h.capacity.disk[pool];
    return cap === undefined ? undefined : cap - (this.disk.get(pool) ?? 0);
  }
  /** Accepts new VMs apart from capacity: schedulable, not drained, reachable. */
  get open(): boolean { return this.h.schedulable && !this.h.drain && this.h.reachable; }
  /** Allocation in percent: the larger of memory and vCPUs. */
  allocation(extraMem = 0, extraCpu = 0): number {
    const pct = (used: number, cap: number): number => (cap > 0 ? (used / cap) * 100 : used > 0 ? 100 : 0);
    return Math.max(pct(this.mem + extraMem, this.allocMem), pct(this.cpu + extraCpu, this.allocCpu));
  }
  /** How the allocation is described: memory (and vCPUs, and where they come from when not plain capacity). */
  ofMem(): string {
    return (this.memText ??= this.describeMem());
  }
  ofCpu(): string {
    return (this.cpuText ??= this.describeCpu());
  }
  private memText: string | undefined;
  private cpuText: string | undefined;
  private describeMem(): string {
    const h = this.h;
    const parts: string[] = [];
    if (h.reserved.memory > 0) parts.push(`${size(h.reserved.memory)} reserved`);
    if (h.overcommit.memory !== 1) parts.push(`overcommit ${h.overcommit.memory}`);
    return `${size(this.allocMem)}${parts.length ? ` (${size(h.capacity.memory)}, ${parts.join(', ')})` : ''}`;
  }
  private describeCpu(): string {
    const h = this.h;
    const parts: string[] = [];
    if (h.reserved.vcpus > 0) parts.push(`${h.reserved.vcpus} reserved`);
    if (h.overcommit.cpu !== 1) parts.push(`overcommit ${h.overcommit.cpu}`);
    return `${num(this.allocCpu)}${parts.length ? ` (${h.capacity.vcpus}, ${parts.join(', ')})` : ''}`;
  }
}

export const num = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(1));

/** Why `labels` do not match `sel`: "needs zone=a, has zone=b; needs ssd=true, has no label ssd". */
export function selectorMismatch(labels: Record<string, string>, sel: LabelSelector | undefined): string {
  return Object.entries(sel?.matchLabels ?? {}).sort(([a], [b]) => cmp(a, b)).filter(([k, v]) => labels[k] !== v)
    .map(([k, v]) => `needs ${k}=${v}, ${labels[k] === undefined ? `has no label ${k}` : `has ${k}=${labels[k]}`}`).join('; ');
}

export const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * One spread constraint's counting: VMs sharing the value of `vmLabel` (all VMs with the same
 * `spreadBy` when `vmLabel` is omitted), counted per value of `hostLabel` of their host.
 */
export class Constraint {
  readonly counts = new Map<string, number>();
  constructor(readonly key: string, readonly hostLabel: string, readonly vmLabel: string | undefined, readonly value: string | undefined) {}

  static keyOf(s: SpreadBy, labels: Record<string, string>): string {
    return s.vmLabel === undefined ? `${s.hostLabel}\0*` : `${s.hostLabel}\0${s.vmLabel}\0${labels[s.vmLabel] ?? '\0none'}`;
  }

  /** Whether a VM counts in this constraint (Kubernetes: the pod matches the constraint's selector). */
  matches(r: PlacementRequest): boolean {
    const own = r.placement?.spreadBy;
    const sameSpread = own !== undefined && own.hostLabel === this.hostLabel && own.vmLabel === this.vmLabel;
    if (this.vmLabel === undefined) return sameSpread;
    if (this.value === undefined) return sameSpread && r.labels[this.vmLabel] === undefined;
    return r.labels[this.vmLabel] === this.value;
  }

  /** "spread by zone for app=web" */
  get title(): string {
    if (this.vmLabel === undefined) return `spread by ${this.hostLabel}`;
    return `spread by ${this.hostLabel} for ${this.vmLabel}=${this.value ?? '(none)'}`;
  }

  add(domain: string | undefined, n: number): void {
    if (domain === undefined) return;
    const c = (this.counts.get(domain) ?? 0) + n;
    if (c === 0) this.counts.delete(domain);
    else this.counts.set(domain, c);
  }
  count(domain: string): number { return this.counts.get(domain) ?? 0; }

  /** "a 1, b 1, c 0" over the given domains (sorted), at most 12 shown. */
  describe(domains: string[]): string {
    const shown = domains.slice(0, 12).map((d) => `${d} ${this.count(d)}`);
    if (domains.length > 12) shown.push(`… ${domains.length - 12} more`);
    return shown.join(', ');
  }
}
