/**
 * Reading one manifest file: size/encoding/nesting guards, multi-document YAML parsing with
 * positions kept, and mapping a field path back to the YAML node's line and column.
 *
 * Two parsers, one result. `yaml` (the stack's parser) keeps every node's position, which errors
 * need; it costs ~7x more than `js-yaml`, which gives only the values (measured: bench/FINDINGS.md,
 * "Start-up and manifest loading"). A file is first read by js-yaml with a schema that resolves plain scalars
 * exactly as `yaml`'s YAML 1.2 core schema does; `yaml` parses it only when that fast read is not
 * certain to give the same documents (see {@link fastParse}: anchors, aliases, tags, directives,
 * explicit or null keys, any error or warning — those files take `yaml`'s path as before, with its
 * error messages), and, for a file read fast, at the first use of a position (`SourceDoc.doc`,
 * `SourceDoc.lineCounter`, `locate`): only files with errors pay for positions. `yaml` itself is
 * loaded then too (src/util/yaml-lib.ts): a run that reads only valid files never loads it.
 */
import { FAILSAFE_SCHEMA, Type as JsYamlType, loadAll as jsYamlLoadAll, type LoadOptions as JsYamlOptions, type State as JsYamlState } from 'js-yaml';
import type { Alias, Document, LineCounter, Node as YamlNode } from 'yaml';
import { yamlLib } from '../util/yaml-lib.js';
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
  /** 0-based index of the document among the file's non-empty documents. */
  index: number;
  /** The document with positions (for a file read fast: parsed by `yaml` at first use). */
  readonly doc: Document.Parsed;
  readonly lineCounter: LineCounter;
  /** Start of the document's content. */
  start: Position;
  /** The document as plain JS, when the fast read produced it ({@link docToJs} hands it out once). */
  value?: unknown;
}

export interface ParsedFile {
  docs: SourceDoc[];
  errors: ManifestError[];
}

const FLOW_SPECIAL = /["'#[\]{}]/g;
const DOUBLE_QUOTED_END = /["\\]/g;
const opensQuote = (prev: string): boolean => prev === ' ' || prev === '\t' || prev === '\n' || prev === '[' || prev === '{' || prev === ',' || prev === ':';

/**
 * Cheap pre-parse scan for flow-collection nesting (`[[[[…` / `{{{…`), which the yaml library
 * handles recursively and can exhaust memory on. Returns the offset of the first bracket that is
 * deeper than the limit. Quotes and comments are skipped approximately; block nesting is checked
 * on the parsed tree instead.
 */
function flowDepthViolation(text: string, limit: number): number | undefined {
  // Jumps from one character that matters to the next (a regex scan, not a loop over every
  // character: ~6-9 instead of ~6-13 ms CPU on the 510 KB of the 2,002-resource bench set, cold).
  let depth = 0;
  for (let i = 0; ;) {
    FLOW_SPECIAL.lastIndex = i;
    const m = FLOW_SPECIAL.exec(text);
    if (!m) return undefined;
    i = m.index;
    const c = text[i]!;
    const prev = i === 0 ? ' ' : text[i - 1]!;
    if (c === "'" || c === '"') {
      if (!opensQuote(prev)) {
        i++;
      } else if (c === "'") {
        const close = text.indexOf("'", i + 1);
        if (close < 0) return undefined;
        i = close + 1;
      } else {
        // A double-quoted scalar: a backslash escapes the next character.
        let j = i + 1;
        for (;;) {
          DOUBLE_QUOTED_END.lastIndex = j;
          const q = DOUBLE_QUOTED_END.exec(text);
          if (!q) return undefined;
          if (text[q.index] === '"') break;
          j = q.index + 2;
        }
        i = DOUBLE_QUOTED_END.lastIndex;
      }
    } else if (c === '#') {
      if (prev === ' ' || prev === '\t' || prev === '\n') {
        const eol = text.indexOf('\n', i + 1);
        if (eol < 0) return undefined;
        i = eol + 1;
      } else i++;
    } else if (c === '[' || c === '{') {
      depth++;
      if (depth > limit) return i;
      i++;
    } else {
      if (depth > 0) depth--;
      i++;
    }
  }
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
  return c === null || (yamlLib().isScalar(c) && c.value === null && (c.source === '' || c.source === undefined) && !c.tag);
}

/** Walk the node tree (not following aliases): depth guard and expanded-size guard against alias bombs. */
function checkTree(sd: SourceDoc): ManifestError | undefined {
  const { doc, lineCounter: lc, file } = sd;
  const { isAlias, isCollection, isPair } = yamlLib();
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

/** Options of {@link parseYamlFile}. */
export interface ParseOptions {
  /** false: always `yaml`'s parse (tests compare both paths). Default true. */
  fast?: boolean;
}

/**
 * Parse one file's text into its non-empty documents, or file-level errors. The one function that
 * turns a manifest file into documents (the loader, the policy file, and a watcher re-reading one
 * changed file all call it).
 */
export function parseYamlFile(file: string, bytes: Buffer, opts: ParseOptions = {}): ParsedFile {
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
  if (opts.fast !== false) {
    const docs = fastParse(file, text);
    if (docs) return { docs, errors };
  }
  const lineCounter = new (yamlLib().LineCounter)();
  let parsed: Document.Parsed[];
  try {
    parsed = parseWithPositions(text, lineCounter);
  } catch (err) {
    errors.push(fileError(file, { line: 1, col: 1 }, `cannot parse YAML: ${err instanceof Error ? err.message : String(err)}`));
    return { docs: [], errors };
  }
  const docs: SourceDoc[] = [];
  let index = 0;
  parsed.forEach((doc) => {
    const problems = [...doc.errors, ...doc.warnings];
    for (const p of problems) {
      errors.push(fileError(file, posOf(lineCounter, p.pos[0]), `YAML: ${p.message}`));
    }
    if (isEmptyDoc(doc)) return;
    const i = index++;
    if (problems.length) return;
    const contents = doc.contents as YamlNode;
    const start = posOf(lineCounter, contents.range?.[0] ?? 0);
    const sd: SourceDoc = { file, index: i, doc, lineCounter, start };
    const treeError = checkTree(sd);
    if (treeError) {
      errors.push(treeError);
      return;
    }
    docs.push(sd);
  });
  return { docs, errors };
}

/**
 * `yaml`'s parse of a whole file, positions kept: the options of every manifest parse. Throws only
 * on what the library cannot handle at all (reported as `cannot parse YAML`).
 */
function parseWithPositions(text: string, lineCounter: LineCounter): Document.Parsed[] {
  const r = yamlLib().parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true, version: '1.2', merge: false });
  return Array.isArray(r) ? r : [r as unknown as Document.Parsed];
}

// ---- The fast read -------------------------------------------------------------------------------

/**
 * js-yaml's schema resolving plain scalars as `yaml`'s YAML 1.2 core schema does (version '1.2',
 * no custom tags): the same tests in the same order (null, bool, int: octal, decimal, hex; float:
 * nan/inf, exponent, fraction) and the same conversions. js-yaml's own CORE_SCHEMA differs
 * (`1_000` is a number there, a string in YAML 1.2 core).
 */
const INT = /^(?:0o[0-7]+|[-+]?[0-9]+|0x[0-9a-fA-F]+)$/;
const FLOAT_SPECIAL = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$|^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/;
/**
 * Which core type a plain scalar resolves to: 0 a string, 1 null, 2 bool, 3 int, 4 float. One
 * function (one js-yaml type) rather than four resolvers tried in turn on every scalar: most are
 * names, sizes and words, told apart from the others by their first character (~5 % of a cold
 * validate's CPU was the four calls).
 */
function coreKind(s: string): 0 | 1 | 2 | 3 | 4 {
  if (s === '') return 1;
  const c = s.charCodeAt(0);
  if (c === 0x7e) return s === '~' ? 1 : 0; // ~
  if (c === 0x6e || c === 0x4e) return s === 'null' || s === 'Null' || s === 'NULL' ? 1 : 0; // n N
  if (c === 0x74 || c === 0x54) return s === 'true' || s === 'True' || s === 'TRUE' ? 2 : 0; // t T
  if (c === 0x66 || c === 0x46) return s === 'false' || s === 'False' || s === 'FALSE' ? 2 : 0; // f F
  if ((c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e) { // 0-9 + - .
    if (INT.test(s)) return 3;
    return FLOAT_SPECIAL.test(s) || FLOAT.test(s) ? 4 : 0;
  }
  return 0;
}
function coreValue(s: string): unknown {
  switch (coreKind(s)) {
    case 1: return null;
    case 2: return s[0] === 't' || s[0] === 'T';
    case 3: return s.startsWith('0o') ? parseInt(s.slice(2), 8) : s.startsWith('0x') ? parseInt(s.slice(2), 16) : parseInt(s, 10);
    case 4: return /^[-+]?\.(?:inf|Inf|INF)$/.test(s) ? (s[0] === '-' ? -Infinity : Infinity) : /nan$/i.test(s) ? NaN : parseFloat(s);
    default: return s;
  }
}
const YAML_1_2_CORE = FAILSAFE_SCHEMA.extend({
  implicit: [
    // The tag is js-yaml's business only: values carry none, and a file with tags goes to `yaml`.
    new JsYamlType('tag:yaml.org,2002:core', { kind: 'scalar', resolve: (s: string) => coreKind(s) !== 0, construct: coreValue }),
  ],
});

/**
 * What the fast read leaves to `yaml`, found in the text (approximately, always erring towards
 * `yaml`: a false match only costs time). Every pattern is something the two libraries read
 * differently, or that only `yaml` refuses (test/unit/manifest/fast-yaml.test.ts compares them).
 * Besides these, every error or warning of js-yaml hands the file to `yaml`.
 */
const LEAVE_TO_YAML = new RegExp([
  /^%/, // a directive (%YAML 1.1 changes the resolution)
  /[\uFEFF\r]/, // a byte order mark, a carriage return
  /(?:^|[\s,[\]{}:?-])[&*!]/, // an anchor, alias or tag (aliases need yaml's expansion guards)
  /(?:^|[\s,[{])\?(?:\s|$)/, // an explicit key
  /(?:^|[\s,[{]|-\s)(?:~|null|Null|NULL)?[ \t]*:(?:\s|$)/, // an empty or null key: "" in yaml, "null" in js-yaml
  /[\]}][ \t]*:(?:\s|$)/, // a collection as a key (yaml warns)
  /\{[ \t\n]*[[{]|,[ \t\n]*\[[^\][{},\n]*\][ \t\n]*[,}]/, // one as a key of a flow mapping ({[a]}, {b: 1, [a]}): see also fastParse
  /^ *\t/, // a tab in indentation (yaml refuses it, even on a blank line)
  /(?:^|[ \t])-[ \t]*(?:#.*)?$/, // an empty sequence entry (js-yaml runs a less indented "- x" after it into its list)
  /[[\]{},"']#/, // a comment not separated from the token before it (yaml refuses it)
  /^---[ \t]+[^\s#]/, // content on the line of "---" (yaml refuses a block collection there)
  /^\.\.\./, // a document end marker (yaml refuses content after it on its line)
  /^[^\n]{1025}/, // a line over 1,024 characters (yaml refuses a longer implicit key)
].map((r) => r.source).join('|'), 'm');

type DepthState = JsYamlState & { depth: number };

/**
 * The documents of `text` read by js-yaml, each with its start (the position `yaml` gives its
 * contents) and a lazy `yaml` parse for positions; undefined when `yaml` must read the file (see
 * {@link LEAVE_TO_YAML}; js-yaml threw or warned; an empty or null document, whose meaning the two
 * libraries tell apart differently; nesting near {@link MAX_DEPTH}).
 */
function fastParse(file: string, text: string): SourceDoc[] | undefined {
  if (LEAVE_TO_YAML.test(text)) return undefined;
  const starts: number[] = [];
  let warned = false;
  let suspicious = false;
  let values: unknown[];
  try {
    values = jsYamlLoadAll(text, null, {
      schema: YAML_1_2_CORE,
      // js-yaml counts scalars too: a collection at MAX_DEPTH with scalar items throws here and is left to yaml.
      maxDepth: MAX_DEPTH,
      onWarning: () => { warned = true; },
      listener: (event, state) => {
        if (event === 'open' && (state as DepthState).depth === 1) starts.push(state.position);
        // A collection used as a key: js-yaml makes it "[object Object]" or "a,b" ([] → ""), yaml "{ a: 1 }" or "[ a, b ]";
        // a null key ({null}, {~}): js-yaml "null", yaml "".
        else if (event === 'close' && state.kind === 'mapping') {
          for (const k of Object.keys(state.result as object)) if (k === '' || k === 'null' || k.includes(',') || k === '[object Object]') suspicious = true;
        }
      },
    } as JsYamlOptions);
  } catch { // safe-catch: a file js-yaml cannot read is read by yaml, whose errors are the ones reported
    return undefined;
  }
  if (warned || suspicious || starts.length !== values.length || values.some((v) => v === null || v === undefined)) return undefined;
  const positions = positionsOf(text, starts);
  const withPositions = lazyPositions(() => text);
  return values.map((value, index): SourceDoc => sourceDoc(file, index, positions[index]!, withPositions, { value }));
}

type PositionsOf = () => { docs: Document.Parsed[]; lineCounter: LineCounter };

/** `yaml`'s position-keeping parse of a file's text, made at the first call and kept. */
function lazyPositions(textOf: () => string): PositionsOf {
  let reparsed: ReturnType<PositionsOf> | undefined;
  return () => {
    if (reparsed) return reparsed;
    const lineCounter = new (yamlLib().LineCounter)();
    let docs: Document.Parsed[];
    try {
      docs = parseWithPositions(textOf(), lineCounter).filter((d) => !isEmptyDoc(d));
    } catch { // safe-catch: js-yaml read the file; without yaml's tree, errors point at the document's start
      docs = [];
    }
    return (reparsed = { docs, lineCounter });
  };
}

/**
 * A document whose `doc` and `lineCounter` come from `withPositions` at their first use (a class:
 * an object literal with getters and a spread cost ~5 µs a document, cold, on 2,000 of them).
 */
class LazySourceDoc implements SourceDoc {
  declare value?: unknown;
  constructor(readonly file: string, readonly index: number, readonly start: Position, private readonly withPositions: PositionsOf, value?: { value: unknown }) {
    if (value) this.value = value.value;
  }

  get doc(): Document.Parsed {
    return this.withPositions().docs[this.index] ?? new (yamlLib().Document)(null) as unknown as Document.Parsed;
  }

  get lineCounter(): LineCounter {
    return this.withPositions().lineCounter;
  }
}

function sourceDoc(file: string, index: number, start: Position, withPositions: PositionsOf, value?: { value: unknown }): SourceDoc {
  return new LazySourceDoc(file, index, start, withPositions, value);
}

/**
 * The documents of a file whose values were taken from elsewhere (the load cache,
 * `load-cache.ts`: values checked in an earlier run, by the sha256 of these same bytes): no value,
 * positions from `yaml`'s parse of `bytes` at their first use, as for a file read fast.
 */
export function restoredDocs(file: string, bytes: Buffer, starts: readonly Position[]): SourceDoc[] {
  const withPositions = lazyPositions(() => bytes.toString('utf8'));
  return starts.map((start, index) => sourceDoc(file, index, start, withPositions));
}

/** 1-based line and column of each of the sorted `offsets` in `text`. */
function positionsOf(text: string, offsets: readonly number[]): Position[] {
  const out: Position[] = [];
  let line = 1;
  let lineStart = 0;
  let at = 0;
  for (const offset of offsets) {
    for (let nl = text.indexOf('\n', at); nl !== -1 && nl < offset; nl = text.indexOf('\n', nl + 1)) {
      line++;
      lineStart = nl + 1;
    }
    at = lineStart;
    out.push({ line, col: offset - lineStart + 1 });
  }
  return out;
}

/** Fast-read documents whose value was handed out (validation fills defaults into it). */
const handedOut = new WeakSet<SourceDoc>();

/**
 * Convert a document to plain JS, or an error (alias expansion over the library's limit). Each
 * call returns a value of its own: a document read fast hands out the value js-yaml made the first
 * time, later calls convert `yaml`'s tree (parsed then).
 */
export function docToJs(sd: SourceDoc): { ok: true; value: unknown } | { ok: false; error: ManifestError } {
  if ('value' in sd && !handedOut.has(sd)) {
    handedOut.add(sd);
    return { ok: true, value: sd.value };
  }
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
  const { isAlias, isMap, isScalar, isSeq } = yamlLib();
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
