/**
 * Strict HTML templating for the dashboard's pages: `html\`…\`` escapes every interpolated value
 * (text and attribute values alike: `& < > " '`), after making control and bidi characters visible
 * (`printable`, as everywhere a manifest value is shown), unless the value is already `SafeHtml`
 * made by `html` itself. Arrays are joined; `null`, `undefined` and `false` render nothing. There is
 * no other way to put a string into a page: no `raw()` taking arbitrary text.
 */
import { printable } from '../../util/printable.js';

const SAFE = Symbol('SafeHtml');

export interface SafeHtml {
  readonly [SAFE]: true;
  readonly text: string;
}

export type Interpolation = SafeHtml | string | number | boolean | null | undefined | readonly Interpolation[];

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** `s` escaped for an HTML text node or a quoted attribute value, with control and bidi characters shown as `\uXXXX` (newlines kept). */
export function escapeHtml(s: string): string {
  return printable(s, { keepNewlines: true }).replace(/[&<>"']/g, (c) => ESC[c]!);
}

function safe(text: string): SafeHtml {
  return { [SAFE]: true, text };
}

export function isSafeHtml(v: unknown): v is SafeHtml {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[SAFE] === true;
}

function render(v: Interpolation): string {
  if (v === null || v === undefined || v === false) return '';
  if (Array.isArray(v)) return (v as readonly Interpolation[]).map(render).join('');
  if (isSafeHtml(v)) return v.text;
  return escapeHtml(String(v));
}

/** The template tag: literal parts are trusted (they are this module's source), values are escaped. */
export function html(strings: TemplateStringsArray, ...values: Interpolation[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return safe(out);
}

/** The final text of a fragment or page. */
export function toHtml(v: Interpolation): string {
  return render(v);
}

/**
 * A same-origin link target: `path` (which must start with `/` and not `//`) with the query's
 * non-empty values, each URL-encoded. Nothing else makes an href, so no `javascript:` URL can
 * reach a page.
 */
export function href(path: string, query: Record<string, string | number | undefined | null> = {}): string {
  if (!path.startsWith('/') || path.startsWith('//')) throw new Error(`dashboard link ${JSON.stringify(path)}: not a path of this server`);
  const q = Object.entries(query)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
  return q ? `${path}?${q}` : path;
}

/** A path segment for a resource key (`host/Kind/name` or `Kind/name`): every character that is not unreserved is encoded, slashes too. */
export function keySegment(key: string): string {
  return encodeURIComponent(key);
}
