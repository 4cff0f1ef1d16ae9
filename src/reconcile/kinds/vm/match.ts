/** Matching the desired disks and NICs with the ones in a definition: by path/target, by MAC, never by position. */
import type { DomainDetail } from '../../../model/definitions.js';
import type { ResolvedNic, VmConfig } from './types.js';

export const lower = (m: string | undefined): string | undefined => (m ? m.toLowerCase() : undefined);

export interface NicMatch {
  /** Desired NIC index → index of the NIC in the current definition that it is. */
  pairs: Map<number, number>;
  /** MAC of each desired NIC: declared, else recorded (chosen once), else the matched NIC's; undefined: a new NIC. */
  macs: (string | undefined)[];
}

/**
 * Which current NIC each desired NIC is, by MAC, never by position: a declared MAC matches that
 * MAC; a NIC without one takes the MAC virtform recorded for it (recorded NICs matched on network
 * and model, then network, in order), else matches the current NIC on the same network and model,
 * then the same network, in definition order.
 */
export function matchNics(
  want: readonly { network: string; model: string; mac?: string }[],
  current: readonly { network: string; model: string; mac: string }[],
  recorded: readonly ResolvedNic[] = [],
): NicMatch {
  const used = new Set<number>();
  const pairs = new Map<number, number>();
  const declared = new Set(want.map((n) => lower(n.mac)).filter((m): m is string => !!m));
  const claim = (i: number, pick: (c: { network: string; model: string; mac: string }) => boolean): void => {
    const j = current.findIndex((c, k) => !used.has(k) && pick(c));
    if (j >= 0) {
      used.add(j);
      pairs.set(i, j);
    }
  };
  want.forEach((n, i) => {
    if (n.mac) claim(i, (c) => lower(c.mac) === lower(n.mac));
  });
  const rec = recorded.filter((x) => !x.declared && !declared.has(x.mac.toLowerCase()));
  const recUsed = new Set<number>();
  const recMac: (string | undefined)[] = want.map(() => undefined);
  for (const strict of [true, false]) {
    want.forEach((n, i) => {
      if (n.mac || recMac[i]) return;
      const k = rec.findIndex((x, k2) => !recUsed.has(k2) && x.network === n.network && (!strict || x.model === n.model));
      if (k >= 0) {
        recUsed.add(k);
        recMac[i] = rec[k]!.mac.toLowerCase();
      }
    });
  }
  want.forEach((n, i) => {
    if (!n.mac && recMac[i]) claim(i, (c) => lower(c.mac) === recMac[i]);
  });
  for (const strict of [true, false]) {
    want.forEach((n, i) => {
      if (n.mac || pairs.has(i)) return;
      claim(i, (c) => !declared.has(c.mac.toLowerCase()) && c.network === n.network && (!strict || c.model === n.model));
    });
  }
  const macs = want.map((n, i) => lower(n.mac) ?? recMac[i] ?? (pairs.has(i) ? lower(current[pairs.get(i)!]!.mac) : undefined));
  return { pairs, macs };
}

/** Which current disk each desired disk is: the one with its source path, else the one on its target. */
export function matchDisks(want: VmConfig['disks'], current: DomainDetail['disks']): Map<number, number> {
  const used = new Set<number>();
  const pairs = new Map<number, number>();
  for (const same of [(a: VmConfig['disks'][number], b: DomainDetail['disks'][number]) => a.path === b.path,
    (a: VmConfig['disks'][number], b: DomainDetail['disks'][number]) => a.target === b.target]) {
    want.forEach((d, i) => {
      if (pairs.has(i)) return;
      const j = current.findIndex((c, k) => !used.has(k) && same(d, c));
      if (j >= 0) {
        used.add(j);
        pairs.set(i, j);
      }
    });
  }
  return pairs;
}

/**
 * The definition's disks as a desired config declares them: its `device='disk'` disks, and its
 * CD-ROMs at a path a desired disk declares (`device: 'cdrom'`, whatever the desired device: a
 * cdrom attached where a disk is wanted, or the reverse, is a difference of that disk); the other
 * CD-ROMs (the cloud-init seed, one not declared) stay in `cdroms`. Idempotent.
 */
export function diskView<T extends Pick<DomainDetail, 'disks' | 'cdroms'>>(cur: T, want: { disks: readonly { path: string }[] }): T {
  const paths = new Set(want.disks.map((d) => d.path));
  const cds = cur.cdroms ?? [];
  const declared = cds.filter((c) => c.path !== '' && paths.has(c.path));
  if (declared.length === 0) return cur;
  return {
    ...cur,
    disks: [...cur.disks, ...declared.map((c) => ({
      path: c.path, target: c.target, bus: c.bus, device: 'cdrom' as const,
      ...(c.bootOrder !== undefined ? { bootOrder: c.bootOrder } : {}), ...(c.format !== undefined ? { format: c.format } : {}),
    }))],
    cdroms: cds.filter((c) => !declared.includes(c)),
  };
}
