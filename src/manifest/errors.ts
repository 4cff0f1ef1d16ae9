import { printable } from '../util/printable.js';
/** Manifest errors: one per problem, each pinned to a file, 1-based line and column. */

export interface ManifestError {
  file: string;
  line: number;
  col: number;
  kind?: string;
  name?: string;
  field?: string;
  message: string;
}

/** `file:line:col: kind/name: field: message`, leaving out the parts that are unknown. */
export function formatManifestError(e: ManifestError): string {
  const parts = [`${e.file}:${e.line}:${e.col}`];
  if (e.kind && e.name) parts.push(`${e.kind}/${e.name}`);
  else if (e.kind) parts.push(e.kind);
  else if (e.name) parts.push(e.name);
  if (e.field) parts.push(e.field);
  parts.push(e.message);
  // File names come from the folder, values from the manifest: no control character reaches a terminal.
  return printable(parts.join(': '));
}

export function compareErrors(a: ManifestError, b: ManifestError): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1;
  if (a.line !== b.line) return a.line - b.line;
  if (a.col !== b.col) return a.col - b.col;
  const fa = a.field ?? '';
  const fb = b.field ?? '';
  if (fa !== fb) return fa < fb ? -1 : 1;
  return a.message < b.message ? -1 : a.message > b.message ? 1 : 0;
}

/** Sort and drop exact duplicates. */
export function sortErrors(errors: ManifestError[]): ManifestError[] {
  const seen = new Set<string>();
  const out: ManifestError[] = [];
  for (const e of [...errors].sort(compareErrors)) {
    const key = formatManifestError(e);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(e);
  }
  return out;
}

/** A path into a document: object keys and array indexes. */
export type FieldPath = (string | number)[];

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `['spec', 'disks', 0, 'volume']` → `spec.disks[0].volume`; odd keys become `labels["a.b"]`. */
export function fieldPathString(path: FieldPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (IDENT.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${quote(seg)}]`;
  }
  return out;
}

/**
 * Quote a user-supplied value for a message: JSON escaping (newlines, quotes, control characters)
 * plus `\uXXXX` for every non-ASCII character, so look-alike letters (Cyrillic `а`) are visible.
 */
export function quote(value: unknown, max = 64): string {
  let s: string;
  try {
    s = JSON.stringify(value) ?? String(value);
  } catch { // safe-catch: a value JSON cannot carry (cycle, BigInt) is shown with String()
    s = String(value);
  }
  s = s.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}
