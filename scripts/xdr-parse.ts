/**
 * Parser for the subset of the XDR / RPC language (RFC 4506 section 6, RFC 5531) that libvirt's
 * protocol files use, and for the integer and string constants of libvirt's public C headers.
 * Used by scripts/gen-protocol.ts; pure functions, no I/O.
 *
 * XDR: `const`, `enum`, `struct`, `union ... switch (...) { case ...: ...; default: ...; }`,
 * `typedef`, declarations `T x;`, `T x[N];` (fixed array / fixed opaque), `T x<N>;` / `T x<>;`
 * (variable array, opaque or string with an optional bound), `T *x;` (optional), `void`, the
 * types `int`, `unsigned int`, `unsigned`, `hyper`, `unsigned hyper`, `bool`, `float`, `double`,
 * `char`, `short` (and unsigned: rpcgen sends them as one 4-byte unit), `string`, `opaque`.
 * Lines starting with `%` (rpcgen pass-through) are skipped. The doc comment in front of each
 * enum member is kept, so the `@generate`, `@acl`... annotations of `remote_procedure` can be read.
 */

export type Prim =
  | 'int'
  | 'uint'
  | 'hyper'
  | 'uhyper'
  | 'bool'
  | 'float'
  | 'double'
  | 'char'
  | 'uchar'
  | 'short'
  | 'ushort';

/** A constant value as written: a number, or the name of a constant. */
export type ValueRef = { num: bigint } | { name: string };

export type TypeSpec = { kind: 'prim'; prim: Prim } | { kind: 'string' } | { kind: 'opaque' } | { kind: 'named'; name: string };

export interface Declaration {
  type: TypeSpec;
  name: string;
  /** `x[N]`: fixed; `x<N>` / `x<>`: variable (bound absent for `<>`). */
  array?: { fixed: true; size: ValueRef } | { fixed: false; max?: ValueRef };
  /** `T *x` */
  optional?: boolean;
}

/** A union arm: `case A: case B: decl;` (decl null for `void`). */
export interface UnionArm {
  cases: ValueRef[];
  decl: Declaration | null;
}

export type Definition =
  | { kind: 'const'; name: string; value: ValueRef }
  | { kind: 'enum'; name: string; members: EnumMember[] }
  | { kind: 'struct'; name: string; fields: Declaration[] }
  | { kind: 'union'; name: string; discriminant: Declaration; arms: UnionArm[]; default?: { decl: Declaration | null } }
  | { kind: 'typedef'; decl: Declaration };

export interface EnumMember {
  name: string;
  value: ValueRef;
  /** The text of the comment just before the member, if any (annotations). */
  doc?: string;
}

export class ParseError extends Error {}

interface Token {
  t: 'id' | 'num' | 'punct';
  v: string;
  line: number;
  /** The last comment seen before this token (since the previous token). */
  doc?: string;
}

function tokenize(src: string, file: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  let line = 1;
  let doc: string | undefined;
  let atLineStart = true;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '\n') {
      line++;
      i++;
      atLineStart = true;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (atLineStart && c === '%') {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    atLineStart = false;
    if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      if (end < 0) throw new ParseError(`${file}:${line}: unterminated comment`);
      const text = src.slice(i + 2, end);
      for (const ch of text) if (ch === '\n') line++;
      doc = text;
      i = end + 2;
      continue;
    }
    if (c === '/' && src[i + 1] === '/') {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    const m = /^(0[xX][0-9a-fA-F]+|-?[0-9]+)/.exec(src.slice(i, i + 40));
    if (m && (c !== '-' || /[0-9]/.test(src[i + 1] ?? ''))) {
      out.push({ t: 'num', v: m[1]!, line, ...(doc !== undefined ? { doc } : {}) });
      doc = undefined;
      i += m[1]!.length;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < src.length && /[A-Za-z0-9_]/.test(src[j]!)) j++;
      out.push({ t: 'id', v: src.slice(i, j), line, ...(doc !== undefined ? { doc } : {}) });
      doc = undefined;
      i = j;
      continue;
    }
    if ('{}()[]<>;,=*:'.includes(c)) {
      out.push({ t: 'punct', v: c, line, ...(doc !== undefined ? { doc } : {}) });
      doc = undefined;
      i++;
      continue;
    }
    throw new ParseError(`${file}:${line}: unexpected character ${JSON.stringify(c)}`);
  }
  return out;
}

/** Parses an XDR/RPC language file into its definitions, in source order. */
export function parseXdr(src: string, file = '<xdr>'): Definition[] {
  const toks = tokenize(src, file);
  let p = 0;
  const peek = (): Token | undefined => toks[p];
  const fail = (msg: string): never => {
    const t = toks[Math.min(p, toks.length - 1)];
    throw new ParseError(`${file}:${t?.line ?? '?'}: ${msg} (at ${JSON.stringify(t?.v ?? 'end of file')})`);
  };
  const next = (): Token => toks[p++] ?? fail('unexpected end of file');
  const expect = (v: string): Token => {
    const t = next();
    if (t.v !== v) {
      p--;
      fail(`expected ${JSON.stringify(v)}`);
    }
    return t;
  };
  const accept = (v: string): boolean => {
    if (peek()?.v === v) {
      p++;
      return true;
    }
    return false;
  };
  const ident = (): string => {
    const t = next();
    if (t.t !== 'id') {
      p--;
      fail('expected an identifier');
    }
    return t.v;
  };
  const value = (): ValueRef => {
    const t = next();
    if (t.t === 'num') return { num: BigInt(t.v) };
    if (t.t === 'id') return { name: t.v };
    p--;
    return fail('expected a number or a constant name');
  };

  const typeSpec = (): TypeSpec => {
    const w = ident();
    switch (w) {
      case 'unsigned': {
        const n = peek()?.v;
        if (n === 'int') return p++, { kind: 'prim', prim: 'uint' };
        if (n === 'hyper') return p++, { kind: 'prim', prim: 'uhyper' };
        if (n === 'char') return p++, { kind: 'prim', prim: 'uchar' };
        if (n === 'short') return p++, { kind: 'prim', prim: 'ushort' };
        return { kind: 'prim', prim: 'uint' };
      }
      case 'int':
      case 'hyper':
      case 'bool':
      case 'float':
      case 'double':
      case 'char':
      case 'short':
        return { kind: 'prim', prim: w };
      case 'string':
        return { kind: 'string' };
      case 'opaque':
        return { kind: 'opaque' };
      case 'struct':
      case 'enum':
      case 'union':
        // `struct foo x;` refers to a named type
        return { kind: 'named', name: ident() };
      default:
        return { kind: 'named', name: w };
    }
  };

  /** A declaration, or null for `void`. */
  const declaration = (): Declaration | null => {
    if (peek()?.v === 'void') {
      p++;
      return null;
    }
    const type = typeSpec();
    const optional = accept('*');
    const name = ident();
    const d: Declaration = { type, name };
    if (optional) d.optional = true;
    if (accept('[')) {
      d.array = { fixed: true, size: value() };
      expect(']');
    } else if (accept('<')) {
      d.array = peek()?.v === '>' ? { fixed: false } : { fixed: false, max: value() };
      expect('>');
    } else if (type.kind === 'string') {
      fail('a string needs <> or <MAX>');
    }
    if (d.optional && d.array) fail('optional arrays are not supported');
    if (type.kind === 'string' && d.array?.fixed) fail('strings cannot be fixed-length');
    return d;
  };

  const defs: Definition[] = [];
  while (p < toks.length) {
    const kw = ident();
    switch (kw) {
      case 'const': {
        const name = ident();
        expect('=');
        defs.push({ kind: 'const', name, value: value() });
        expect(';');
        break;
      }
      case 'enum': {
        const name = ident();
        expect('{');
        const members: EnumMember[] = [];
        let prev: ValueRef | undefined;
        while (!accept('}')) {
          const t = peek();
          const mname = ident();
          let v: ValueRef;
          if (accept('=')) v = value();
          else if (!prev) v = { num: 0n };
          else if ('num' in prev) v = { num: prev.num + 1n };
          else fail(`enum member ${mname} without a value after a symbolic one`);
          const m: EnumMember = { name: mname, value: v! };
          if (t?.doc !== undefined) m.doc = t.doc;
          members.push(m);
          prev = v!;
          if (!accept(',')) {
            expect('}');
            break;
          }
        }
        expect(';');
        defs.push({ kind: 'enum', name, members });
        break;
      }
      case 'struct': {
        const name = ident();
        expect('{');
        const fields: Declaration[] = [];
        while (!accept('}')) {
          const d = declaration();
          if (!d) fail('void is not allowed in a struct');
          fields.push(d!);
          expect(';');
        }
        expect(';');
        defs.push({ kind: 'struct', name, fields });
        break;
      }
      case 'union': {
        const name = ident();
        expect('switch');
        expect('(');
        const discriminant = declaration();
        if (!discriminant || discriminant.array || discriminant.optional) fail('bad union discriminant');
        expect(')');
        expect('{');
        const arms: UnionArm[] = [];
        let dflt: { decl: Declaration | null } | undefined;
        while (!accept('}')) {
          if (accept('default')) {
            expect(':');
            dflt = { decl: declaration() };
            expect(';');
            continue;
          }
          const cases: ValueRef[] = [];
          while (accept('case')) {
            cases.push(value());
            expect(':');
          }
          if (cases.length === 0) fail('expected case or default');
          arms.push({ cases, decl: declaration() });
          expect(';');
        }
        expect(';');
        const u: Definition = { kind: 'union', name, discriminant: discriminant!, arms };
        if (dflt) u.default = dflt;
        defs.push(u);
        break;
      }
      case 'typedef': {
        const d = declaration();
        if (!d) fail('typedef void');
        expect(';');
        defs.push({ kind: 'typedef', decl: d! });
        break;
      }
      default:
        p--;
        fail(`unexpected ${JSON.stringify(kw)} at top level`);
    }
  }
  return defs;
}

// ---------------------------------------------------------------------------------------------
// Procedure annotations (the doc comments of remote_procedure's members)
// ---------------------------------------------------------------------------------------------

export interface ProcAnnotations {
  generate?: string;
  priority?: string;
  acl: string[];
  aclfilter: string[];
  readstream?: number;
  writestream?: number;
  sparseflag?: string;
}

export function parseAnnotations(doc: string | undefined): ProcAnnotations {
  const a: ProcAnnotations = { acl: [], aclfilter: [] };
  if (!doc) return a;
  for (const m of doc.matchAll(/@([a-z]+)\s*:?\s*([^\s*]*)/g)) {
    const [, key, val] = m as unknown as [string, string, string];
    switch (key) {
      case 'acl':
        a.acl.push(val);
        break;
      case 'aclfilter':
        a.aclfilter.push(val);
        break;
      case 'readstream':
      case 'writestream':
        a[key] = Number(val);
        break;
      case 'generate':
      case 'priority':
      case 'sparseflag':
        a[key] = val;
        break;
      default:
      // other annotations are ignored
    }
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// C header constants: enum members and object-like #defines with an integer or string value
// ---------------------------------------------------------------------------------------------

export interface HeaderConstant {
  name: string;
  /** Integer value, or a string for `#define X "text"`. */
  value: bigint | string;
  /** The enum type (typedef name) it belongs to, or 'define'. */
  group: string;
}

/**
 * Extracts the constants of a C header. Enum members without a value continue from the previous
 * one; values are integer expressions (`1 << 3`, `A | B`, `(4096 + 1)`, `0x10U`, other constants).
 * Members inside `#ifdef VIR_ENUM_SENTINELS` (the `*_LAST` markers) are left out, as are defines
 * whose value is not a constant expression. `known` supplies constants of headers read before.
 */
export function parseHeaderConstants(src: string, known: Map<string, bigint | string>): HeaderConstant[] {
  const out: HeaderConstant[] = [];
  const lines = src.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' ')).split('\n');
  // Join continuation lines, drop sentinel blocks, collect defines; keep the rest as code text.
  const code: string[] = [];
  let skipDepth = 0;
  let depth = 0;
  for (let i = 0; i < lines.length; i++) {
    let l = lines[i]!;
    while (l.endsWith('\\') && i + 1 < lines.length) l = l.slice(0, -1) + ' ' + lines[++i]!;
    const pp = /^\s*#\s*(\w+)\s*(.*)$/.exec(l);
    if (pp) {
      const [, dir, rest] = pp as unknown as [string, string, string];
      if (dir === 'if' || dir === 'ifdef' || dir === 'ifndef') {
        depth++;
        if (skipDepth === 0 && dir === 'ifdef' && rest.trim() === 'VIR_ENUM_SENTINELS') skipDepth = depth;
      } else if (dir === 'endif') {
        if (skipDepth === depth) skipDepth = 0;
        depth--;
      } else if (dir === 'define' && skipDepth === 0) {
        const d = /^([A-Za-z_]\w*)(\(?)\s*(.*)$/.exec(rest.trim());
        if (d && d[2] === '' && d[3]!.trim() !== '') {
          const v = evalConst(d[3]!.trim(), known);
          if (v !== undefined && !known.has(d[1]!)) {
            known.set(d[1]!, v);
            out.push({ name: d[1]!, value: v, group: 'define' });
          }
        }
      }
      code.push('');
      continue;
    }
    code.push(skipDepth ? '' : l);
  }
  const text = code.join('\n');
  for (const m of text.matchAll(/\benum\s*(\w*)\s*\{([^}]*)\}\s*(\w*)/g)) {
    const group = m[3] || m[1] || 'enum';
    let prev = -1n;
    for (const raw of m[2]!.split(',')) {
      const item = raw.trim();
      if (!item) continue;
      const e = /^([A-Za-z_]\w*)\s*(?:=\s*([\s\S]+))?$/.exec(item);
      if (!e) continue;
      let v: bigint | string | undefined = e[2] === undefined ? prev + 1n : evalConst(e[2].trim(), known);
      if (typeof v !== 'bigint') v = undefined;
      if (v === undefined) continue;
      prev = v;
      if (known.has(e[1]!)) continue;
      known.set(e[1]!, v);
      out.push({ name: e[1]!, value: v, group });
    }
  }
  return out;
}

/** Evaluates a C constant expression (integers, names in `known`, + - * << >> | & ^ ~ and parentheses), or a string literal. */
export function evalConst(expr: string, known: Map<string, bigint | string>): bigint | string | undefined {
  const s = /^"((?:[^"\\]|\\.)*)"$/.exec(expr);
  if (s) return JSON.parse(`"${s[1]}"`) as string;
  const toks = expr.match(/0[xX][0-9a-fA-F]+[uUlL]*|[0-9]+[uUlL]*|[A-Za-z_]\w*|<<|>>|[-+*|&^~()]|\S/g);
  if (!toks) return undefined;
  let i = 0;
  const prec: Record<string, number> = { '|': 1, '^': 2, '&': 3, '<<': 4, '>>': 4, '+': 5, '-': 5, '*': 6 };
  const primary = (): bigint | undefined => {
    const t = toks[i++];
    if (t === undefined) return undefined;
    if (t === '(') {
      const v = binary(0);
      if (toks[i++] !== ')') return undefined;
      return v;
    }
    if (t === '-') {
      const v = primary();
      return v === undefined ? undefined : -v;
    }
    if (t === '~') {
      const v = primary();
      return v === undefined ? undefined : ~v;
    }
    if (/^[0-9]/.test(t)) return BigInt(t.replace(/[uUlL]+$/, ''));
    const k = known.get(t);
    return typeof k === 'bigint' ? k : undefined;
  };
  const binary = (min: number): bigint | undefined => {
    let l = primary();
    if (l === undefined) return undefined;
    for (;;) {
      const op = toks[i];
      const pr = op === undefined ? undefined : prec[op];
      if (pr === undefined || pr < min) return l;
      i++;
      const r = binary(pr + 1);
      if (r === undefined) return undefined;
      switch (op) {
        case '|': l = l | r; break;
        case '^': l = l ^ r; break;
        case '&': l = l & r; break;
        case '<<': l = l << r; break;
        case '>>': l = l >> r; break;
        case '+': l = l + r; break;
        case '-': l = l - r; break;
        case '*': l = l * r; break;
      }
    }
  };
  const v = binary(0);
  return i === toks.length ? v : undefined;
}
