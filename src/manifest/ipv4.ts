/** Small IPv4 helpers for CIDR, DHCP range and static host checks. */

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

export interface Cidr {
  /** Network address as an integer. */
  base: number;
  prefix: number;
  /** Number of addresses in the block. */
  size: number;
  /** Broadcast address as an integer. */
  last: number;
  /** The host side address libvirt is given: first usable address. */
  gateway: number;
}

/** Parse `a.b.c.d/n` (already schema-checked). `hostBits` is true when the address is not the network address. */
export function parseCidr(cidr: string): Cidr & { hostBits: boolean } {
  const [ip = '0.0.0.0', bits = '0'] = cidr.split('/');
  const prefix = Number(bits);
  const size = 2 ** (32 - prefix);
  const addr = ipToInt(ip);
  const base = Math.floor(addr / size) * size;
  return { base, prefix, size, last: base + size - 1, gateway: base + 1, hostBits: addr !== base };
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.base <= b.last && b.base <= a.last;
}

/** Why `ip` cannot be handed to a guest in `cidr`, or undefined when it can. */
export function unusableReason(ip: string, cidr: Cidr, cidrText: string): string | undefined {
  const n = ipToInt(ip);
  if (n < cidr.base || n > cidr.last) return `${ip} is outside ${cidrText}`;
  if (n === cidr.base) return `${ip} is the network address of ${cidrText}`;
  if (n === cidr.last) return `${ip} is the broadcast address of ${cidrText}`;
  if (n === cidr.gateway) return `${ip} is the host (gateway) address of ${cidrText}`;
  return undefined;
}
