/**
 * What the dashboard never sends: cloud-init user-data and any secret-ish field (password, token,
 * secret, private key, credentials, …) are replaced by `[redacted: N bytes, sha256 <12 hex>]`: the
 * size and a short digest tell two values apart without showing either.
 */
import { createHash } from 'node:crypto';

/** Field names whose values are secrets (matched case-insensitively on the last path segment). */
const SECRET_NAME = /(user-?data|userdata|password|passwd|secret|token|private-?key|privatekey|credential|api-?key|apikey|cookie|auth)/i;

export function redactedText(value: unknown): string {
  const text = typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('latin1') : JSON.stringify(value) ?? '';
  const bytes = typeof value === 'string' ? Buffer.byteLength(value) : Buffer.isBuffer(value) ? value.length : Buffer.byteLength(text);
  const digest = createHash('sha256').update(Buffer.isBuffer(value) ? value : Buffer.from(text)).digest('hex').slice(0, 12);
  return `[redacted: ${bytes} bytes, sha256 ${digest}]`;
}

export function isSecretField(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** A deep copy of `value` with every secret-ish field replaced (null and undefined are kept as they are). */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 32) return '[too deep]';
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (Buffer.isBuffer(value)) return `[${value.length} bytes]`;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out[k] = isSecretField(k) && v !== null && v !== undefined && v !== '' ? redactedText(v) : redact(v, depth + 1);
    }
    return out;
  }
  return value;
}
