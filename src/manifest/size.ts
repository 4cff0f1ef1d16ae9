/**
 * Sizes in manifests: `capacity` and `memory`.
 *
 * Accepted forms (case-sensitive, optional single space before the unit):
 *   - a non-negative integer (JSON/YAML number or digit string): bytes;
 *   - `B`: bytes;
 *   - `K`, `M`, `G`, `T` and `KiB`, `MiB`, `GiB`, `TiB`: powers of 1024 (so `1G` == `1GiB`, as in qemu-img);
 *   - `KB`, `MB`, `GB`, `TB`: powers of 1000.
 * A decimal number is allowed only if the result is a whole number of bytes (`1.5GiB` ok, `0.5B` not).
 * Results above Number.MAX_SAFE_INTEGER (2^53-1) bytes are rejected.
 * `memory` is then rounded UP to a whole KiB ({@link roundUpToKiB}: libvirt takes memory in KiB),
 * so `1GB` (10^9 bytes) is 976563KiB.
 */

export class ManifestSizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestSizeError';
  }
}

const KIB = 1024;
const UNITS: Record<string, bigint> = {
  '': 1n,
  B: 1n,
  K: 1024n,
  KiB: 1024n,
  M: 1024n ** 2n,
  MiB: 1024n ** 2n,
  G: 1024n ** 3n,
  GiB: 1024n ** 3n,
  T: 1024n ** 4n,
  TiB: 1024n ** 4n,
  KB: 1000n,
  MB: 1000n ** 2n,
  GB: 1000n ** 3n,
  TB: 1000n ** 4n,
};

const SIZE_RE = /^([0-9]+)(?:\.([0-9]+))? ?([A-Za-z]*)$/;

function show(text: unknown): string {
  const s = JSON.stringify(text) ?? String(text);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/** Parse a size into bytes. Throws {@link ManifestSizeError} with a clear message on anything else. */
export function parseSize(text: string | number): number {
  if (typeof text === 'number') {
    if (!Number.isFinite(text)) throw new ManifestSizeError(`size ${show(text)} is not a finite number`);
    if (text < 0) throw new ManifestSizeError(`size ${text} is negative`);
    if (!Number.isInteger(text)) throw new ManifestSizeError(`size ${text} is not a whole number of bytes`);
    if (text > Number.MAX_SAFE_INTEGER) throw new ManifestSizeError(`size ${text} is too large (max 2^53-1 bytes)`);
    return text;
  }
  if (typeof text !== 'string') throw new ManifestSizeError(`size must be a string or a number, got ${typeof text}`);
  const trimmed = text.trim();
  if (trimmed.startsWith('-')) throw new ManifestSizeError(`size ${show(text)} is negative`);
  const m = SIZE_RE.exec(trimmed);
  if (!m) {
    throw new ManifestSizeError(`invalid size ${show(text)}: expected a number with an optional unit, e.g. 10GiB, 512MiB, 1G or 1048576`);
  }
  const [, whole = '', frac = '', unit = ''] = m;
  const mult = UNITS[unit];
  if (mult === undefined) {
    throw new ManifestSizeError(`invalid size ${show(text)}: unknown unit ${show(unit)} (use B, KiB/MiB/GiB/TiB, K/M/G/T or KB/MB/GB/TB)`);
  }
  if (whole.length + frac.length > 30) throw new ManifestSizeError(`size ${show(text)} is too large (max 2^53-1 bytes)`);
  const scale = 10n ** BigInt(frac.length);
  const numerator = (BigInt(whole) * scale + BigInt(frac || '0')) * mult;
  if (numerator % scale !== 0n) throw new ManifestSizeError(`size ${show(text)} is not a whole number of bytes`);
  const bytes = numerator / scale;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw new ManifestSizeError(`size ${show(text)} is too large (max 2^53-1 bytes)`);
  return Number(bytes);
}

/** `bytes` rounded up to a whole KiB (memory sizes: libvirt counts memory in KiB). */
export function roundUpToKiB(bytes: number): number {
  return Math.ceil(bytes / KIB) * KIB;
}

/** Human-readable binary size, e.g. 1073741824 → "1GiB", 1536 → "1.5KiB". */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let i = 0;
  while (value >= KIB && i < units.length - 1) {
    value /= KIB;
    i++;
  }
  return `${Number.isInteger(value) ? value : Number(value.toFixed(2))}${units[i]}`;
}
