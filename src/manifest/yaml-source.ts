/**
 * Reading one manifest file: size/encoding/nesting guards, multi-document YAML parsing with
 * positions kept, and mapping a field path back to the YAML node's line and column.
 */
import {
  Alias,
  Document,
  LineCounter,
  isAlias,
  isCollection,
  isMap,
  isPair,
  isScalar,
  isSeq,
  parseAllDocuments,
  type Node as YamlNode,
} from 'yaml';
import type { FieldPath, ManifestError } from './errors.js';

/** Files larger than this are refused before parsing. */
export const MAX_FILE_BYTES = 1024 * 1024;
/** Maximum nesting of collections in one document (manifests need about 6). */
export const MAX_DEPTH = 32;
/** Alias expansions allowed by the yaml library (its own guard against "billion laughs"). */
export const MAX_ALIAS_COUNT = 100;
/** Maximum number of YAML nodes a document may expand to once aliases are followed. */
export const MAX_EXPANDED_NODES = 10_000;

export interface Position {
  line: number;
  col: number;
}

export interface SourceDoc {
  file: string;
  /** 0-based index of the document inside the file. */
  index: number;
  doc: Document.Parsed;
  lineCounter: LineCounter;
  /** Start of the document's content. */
  start: Position;
}

export interface ParsedFile {
  docs: SourceDoc[];
  errors: ManifestError[];
}

/**
 * Cheap pre-parse scan for flow-collection nesting (`[[[[…` / `{{{…`), which the yaml library
 * handles recursively and can exhaust memory on. Returns the offset of the first bracket that is
 * deeper than the limit. Quotes and comments are skipped approximately; block nesting is checked
 * on the parsed tree instead.
 */
function flowDepthViolation(text: string, limit: number): number | undefined {
  let depth = 0;
  let quoteChar: string | undefined;
  let comment = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (comment) {
      if (c === '\n') comment = false;
      continue;
    }
    if (quoteChar) {
      if (c === '\\' && quoteChar === '"') i++;
      else if (c === quoteChar) quoteChar = undefined;
      continue;
    }
    if (c === '"' || c === "'") {
      const prev = i === 0 ? ' ' : text[i - 1];
      if (prev === ' ' || prev === '\t' || prev === '\n' || prev === '[' || prev === '{' || prev === ',' || prev === ':') quoteChar = c;
    } else if (c === '#') {
      const prev = i === 0 ? ' ' : text[i - 1];
      if (prev === ' ' || prev === '\t' || prev === '\n') comment = true;
    } else if (c === '[' || c === '{') {
      depth++;
      if (depth > limit) return i;
    } else if (c === ']' || c === '}') {
      if (depth > 0) depth--;
    }
  }
  return undefined;
}

function posOf(lc: LineCounter, offset: number): Position {
  const p = lc.linePos(offset);
  return { line: p.line, col: p.col };
}

/** Position from a raw offset when there is no LineCounter (before parsing). */
function posInText(text: string, offset: number): Position {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === '\n') {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, col: offset - lineStart + 1 };
}

function fileError(file: string, pos: Position, message: string): ManifestError {
  return { file, line: pos.line, col: pos.col, message };
}

/** True for a document with no content at all (e.g. a trailing `---` or only comments). */
function isEmptyDoc(doc: Document.Parsed): boolean {
  const c = doc.contents;
  return c === null || (isScalar(c) && c.value === null && (c.source === '' || c.source === undefined) && !c.tag);
}

/** Walk the node tree (not following aliases): depth guard and expanded-size guard against alias bombs. */
function checkTree(sd: SourceDoc): ManifestError | undefined {
  const { doc, lineCounter: lc, file } = sd;
  const root = doc.contents;
  if (!root) return undefined;
  // Depth, iteratively.
  const stack: [unknown, number][] = [[root, 1]];
  const aliases: Alias[] = [];
  while (stack.length) {
    const [node, depth] = stack.pop()!;
    if (isAlias(node)) {
      aliases.push(node);
      continue;
    }
    if (!isCollection(node)) continue;
    if (depth > MAX_DEPTH) {
      const at = node.range ? posOf(lc, node.range[0]) : sd.start;
      return fileError(file, at, `nesting deeper than ${MAX_DEPTH} levels`);
    }
    for (const item of node.items as unknown[]) {
      if (isPair(item)) {
        stack.push([item.key, depth + 1]);
        stack.push([item.value, depth + 1]);
      } else stack.push([item, depth + 1]);
    }
  }
  if (aliases.length === 0) return undefined;
  // Expanded size with aliases followed, memoized per node.
  const memo = new Map<unknown, number>();
  const active = new Set<unknown>();
  const size = (node: unknown): number => {
    if (node === null || node === undefined) return 0;
    if (isAlias(node)) {
      const target = node.resolve(doc);
      return target ? size(target) : 1;
    }
    const known = memo.get(node);
    if (known !== undefined) return known;
    if (active.has(node)) return MAX_EXPANDED_NODES + 1; // self-referencing alias
    active.add(node);
    let total = 1;
    if (isCollection(node)) {
      for (const item of node.items as unknown[]) {
        if (isPair(item)) total += size(item.key) + size(item.value);
        else total += size(item);
        if (total > MAX_EXPANDED_NODES) break;
      }
    }
    active.delete(node);
    total = Math.min(total, MAX_EXPANDED_NODES + 1);
    memo.set(node, total);
    return total;
  };
  if (size(root) <= MAX_EXPANDED_NODES) return undefined;
  // Blame the alias (first in document order) whose expansion is the largest.
  aliases.sort((a, b) => (a.range?.[0] ?? 0) - (b.range?.[0] ?? 0));
  let worst = aliases[0]!;
  let worstSize = -1;
  for (const a of aliases) {
    const s = size(a);
    if (s > worstSize) {
      worst = a;
      worstSize = s;
    }
  }
  const at = worst.range ? posOf(lc, worst.range[0]) : sd.start;
  return fileError(file, at, `alias *${worst.source} expands the document beyond ${MAX_EXPANDED_NODES} nodes (YAML alias bomb?)`);
}

/** Parse a file's text into its non-empty documents, or file-level errors. */
export function parseYamlFile(file: string, bytes: Buffer): ParsedFile {
  const errors: ManifestError[] = [];
  if (bytes.length > MAX_FILE_BYTES) {
    errors.push(fileError(file, { line: 1, col: 1 }, `file is ${bytes.length} bytes, larger than the ${MAX_FILE_BYTES}-byte (1 MiB) limit`));
    return { docs: [], errors };
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch { // safe-catch: reported on the next line as not valid UTF-8
    errors.push(fileError(file, { line: 1, col: 1 }, 'file is not valid UTF-8'));
    return { docs: [], errors };
  }
  const nul = text.indexOf('\u0000');
  if (nul >= 0) {
    errors.push(fileError(file, posInText(text, nul), 'file contains a NUL character'));
    return { docs: [], errors };
  }
  const deep = flowDepthViolation(text, MAX_DEPTH);
  if (deep !== undefined) {
    errors.push(fileError(file, posInText(text, deep), `nesting deeper than ${MAX_DEPTH} levels`));
    return { docs: [], errors };
  }
  const lineCounter = new LineCounter();
  let parsed: Document.Parsed[];
  try {
    const r = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true, version: '1.2', merge: false });
    parsed = Array.isArray(r) ? r : [r as unknown as Document.Parsed];
  } catch (err) {
    errors.push(fileError(file, { line: 1, col: 1 }, `cannot parse YAML: ${err instanceof Error ? err.message : String(err)}`));
    return { docs: [], errors };
  }
  const docs: SourceDoc[] = [];
  parsed.forEach((doc, index) => {
    const problems = [...doc.errors, ...doc.warnings];
    for (const p of problems) {
      errors.push(fileError(file, posOf(lineCounter, p.pos[0]), `YAML: ${p.message}`));
    }
    if (problems.length) return;
    if (isEmptyDoc(doc)) return;
    const contents = doc.contents as YamlNode;
    const start = posOf(lineCounter, contents.range?.[0] ?? 0);
    const sd: SourceDoc = { file, index, doc, lineCounter, start };
    const treeError = checkTree(sd);
    if (treeError) {
      errors.push(treeError);
      return;
    }
    docs.push(sd);
  });
  return { docs, errors };
}

/** Convert a document to plain JS, or an error (alias expansion over the library's limit). */
export function docToJs(sd: SourceDoc): { ok: true; value: unknown } | { ok: false; error: ManifestError } {
  try {
    return { ok: true, value: sd.doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) as unknown };
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    return { ok: false, error: fileError(sd.file, sd.start, `cannot load document: ${msg}`) };
  }
}

function nodeStart(sd: SourceDoc, node: unknown): Position | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? posOf(sd.lineCounter, range[0]) : undefined;
}

/**
 * Position of the node at `path` in the document. With `key: true` the position of the last
 * segment's key is returned (for unknown fields). When the path runs out (missing field), the
 * deepest existing node is used. Implicit nulls (`spec:` with nothing after it) point at their key.
 */
export function locate(sd: SourceDoc, path: FieldPath, opts: { key?: boolean } = {}): Position {
  let node: unknown = sd.doc.contents;
  let pos: Position = sd.start;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    if (isAlias(node)) node = node.resolve(sd.doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => {
        const k = p.key as unknown;
        return isScalar(k) ? String(k.value) === String(seg) : k === seg;
      });
      if (!pair) return pos;
      const last = i === path.length - 1;
      const keyPos = nodeStart(sd, pair.key) ?? pos;
      if (last && opts.key) return keyPos;
      const v = pair.value as unknown;
      if (v === null || v === undefined || (isScalar(v) && v.value === null && !v.source)) return keyPos;
      node = v;
      pos = nodeStart(sd, v) ?? keyPos;
    } else if (isSeq(node)) {
      const item = node.items[Number(seg)] as unknown;
      if (item === undefined) return pos;
      node = item;
      pos = nodeStart(sd, item) ?? pos;
    } else {
      return pos;
    }
  }
  return pos;
}
