/**
 * Generates virtform's libvirt protocol layer (src/libvirt/generated/) from libvirt's own
 * protocol definitions and public headers, in the manner of digitalocean/go-libvirt's generator
 * (own code, same idea): the procedure table, every `*_args` / `*_ret` / `*_msg` struct as a
 * TypeScript interface with its XDR reader and writer, a camelCase call stub for every callable
 * procedure, and the `VIR_*` constants of the public headers.
 *
 *   npx tsx scripts/gen-protocol.ts                 # fetch (cached) libvirt sources, regenerate
 *   npx tsx scripts/gen-protocol.ts --check         # regenerate into a temp dir, compare
 *   npx tsx scripts/gen-protocol.ts --src DIR [--out DIR]
 *
 * Sources: Debian's `libvirt` source package (the release bookworm's daemon runs, 9.0.0), fetched
 * and unpacked by scripts/fetch-libvirt-src.sh into /var/cache/virtform/libvirt-src (or
 * $VIRTFORM_LIBVIRT_SRC). libvirt's files are not committed; only the generated output is.
 *
 * Exit codes: 0 ok (with --check: no difference), 1 --check found differences (listed) or the
 * generator failed, 2 the libvirt sources could not be fetched.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Declaration,
  type Definition,
  type HeaderConstant,
  parseAnnotations,
  parseHeaderConstants,
  parseXdr,
  type ProcAnnotations,
  type TypeSpec,
  type ValueRef,
} from './xdr-parse.js';

export const LIBVIRT_VERSION = '9.0.0';
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const OUT_DIR = join(ROOT, 'src/libvirt/generated');
export const DEFAULT_CACHE = process.env.VIRTFORM_LIBVIRT_SRC ?? '/var/cache/virtform/libvirt-src';

/** The input files, relative to the unpacked libvirt source tree. */
const NET_X = ['src/rpc/virnetprotocol.x', 'src/rpc/virkeepaliveprotocol.x'];
const REMOTE_X = 'src/remote/remote_protocol.x';
const HEADER_DIR = 'include/libvirt';

/**
 * ACL permissions that only read or observe. A procedure is "mutating" (changes host state) when
 * any of its `@acl` rules names another permission (write, save, start, stop, delete, create,
 * migrate, ...). Rules conditional on a flag count too: they can apply. `refresh` (a pool re-reads
 * its directory: no definition or object changes) and the opening of consoles/graphics/channels
 * count as not mutating, as virtform's hand-written table had them.
 */
const READ_ONLY_PERMISSIONS = new Set([
  'none',
  'getattr',
  'read',
  'read_secure',
  'refresh',
  'open_graphics',
  'open_device',
  'screenshot',
  'mem_read',
  'block_read',
  'data_read',
  'detect_storage_pools',
]);

export function isMutatingAcl(acl: readonly string[]): boolean {
  return acl.some((rule) => {
    if (rule === 'none') return false;
    const perm = rule.split(':')[1] ?? '';
    return !(READ_ONLY_PERMISSIONS.has(perm) || perm.startsWith('search_'));
  });
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

const RESERVED = new Set(
  'break case catch class const continue debugger default delete do else enum export extends false finally for function if import in instanceof new null return super switch this throw true try typeof var void while with yield let static implements interface package private protected public await arguments eval'.split(
    ' ',
  ),
);

/** remote_nonnull_domain -> RemoteNonnullDomain; virNetMessageHeader -> VirNetMessageHeader */
export function pascal(name: string): string {
  return name
    .split('_')
    .filter(Boolean)
    .map((p) => p[0]!.toUpperCase() + p.slice(1))
    .join('');
}

/** need_results -> needResults; callbackID stays. Reserved words get a trailing underscore. */
export function camelParam(name: string): string {
  const c = name.replace(/_([a-zA-Z0-9])/g, (_m, ch: string) => ch.toUpperCase());
  return RESERVED.has(c) ? `${c}_` : c;
}

/** REMOTE_PROC_DOMAIN_GET_XML_DESC -> domainGetXmlDesc */
export function procMethodName(enumName: string): string {
  const words = enumName.replace(/^REMOTE_PROC_/, '').toLowerCase().split('_');
  return words.map((w, i) => (i === 0 ? w : w[0]!.toUpperCase() + w.slice(1))).join('');
}

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

interface Module {
  file: string;
  sources: string[];
  defs: Definition[];
}

interface Model {
  modules: Module[];
  headers: { file: string; constants: HeaderConstant[] }[];
  /** every named type -> its definition and module */
  types: Map<string, { def: Definition; module: string }>;
  /** every constant (XDR consts, enum members, header constants) -> value and where defined */
  consts: Map<string, { value: bigint | string; module: string }>;
}

function buildModel(srcDir: string): Model {
  const read = (rel: string) => readFileSync(join(srcDir, rel), 'utf8');
  const headers: Model['headers'] = [];
  const known = new Map<string, bigint | string>();
  const headerFiles = readdirSync(join(srcDir, HEADER_DIR))
    .filter((f) => f.endsWith('.h') || f.endsWith('.h.in'))
    .sort();
  // libvirt-common.h.in first: the others use its constants (VIR_TYPED_PARAM_*).
  headerFiles.sort((a, b) => Number(b.startsWith('libvirt-common')) - Number(a.startsWith('libvirt-common')));
  for (const f of headerFiles) headers.push({ file: `${HEADER_DIR}/${f}`, constants: parseHeaderConstants(read(`${HEADER_DIR}/${f}`), known) });

  const modules: Module[] = [
    { file: 'net-protocol.ts', sources: NET_X, defs: NET_X.flatMap((f) => parseXdr(read(f), f)) },
    { file: 'remote-protocol.ts', sources: [REMOTE_X], defs: parseXdr(read(REMOTE_X), REMOTE_X) },
  ];
  const types = new Map<string, { def: Definition; module: string }>();
  const consts = new Map<string, { value: bigint | string; module: string }>();
  for (const h of headers) for (const c of h.constants) consts.set(c.name, { value: c.value, module: 'constants.ts' });
  const setConst = (name: string, value: bigint, module: string) => {
    const prev = consts.get(name);
    if (prev && prev.value !== value) throw new Error(`constant ${name} defined twice with different values`);
    if (!prev) consts.set(name, { value, module });
  };
  for (const m of modules) {
    for (const d of m.defs) {
      if (d.kind === 'const') setConst(d.name, valueOf(d.value, consts), m.file);
      else if (d.kind === 'enum') {
        types.set(d.name, { def: d, module: m.file });
        for (const mem of d.members) setConst(mem.name, valueOf(mem.value, consts), m.file);
      } else if (d.kind === 'typedef') types.set(d.decl.name, { def: d, module: m.file });
      else types.set(d.name, { def: d, module: m.file });
    }
  }
  return { modules, headers, types, consts };
}

function valueOf(v: ValueRef, consts: Model['consts']): bigint {
  if ('num' in v) return v.num;
  const c = consts.get(v.name);
  if (!c || typeof c.value !== 'bigint') throw new Error(`unknown integer constant ${v.name}`);
  return c.value;
}

function numLiteral(v: bigint): string {
  const n = Number(v);
  return Number.isSafeInteger(n) ? String(n) : `${v}n`;
}

// ---------------------------------------------------------------------------------------------
// Code generation for one module of types and codecs
// ---------------------------------------------------------------------------------------------

const PRIM_TS: Record<string, string> = {
  int: 'number',
  uint: 'number',
  char: 'number',
  uchar: 'number',
  short: 'number',
  ushort: 'number',
  hyper: 'bigint',
  uhyper: 'bigint',
  bool: 'boolean',
  float: 'number',
  double: 'number',
};
// rpcgen sends char and short as one 4-byte unit, signed or unsigned.
const PRIM_READ: Record<string, string> = {
  int: 'int',
  uint: 'uint',
  char: 'int',
  uchar: 'uint',
  short: 'int',
  ushort: 'uint',
  hyper: 'hyper',
  uhyper: 'uhyper',
  bool: 'bool',
  float: 'float',
  double: 'double',
};

class Emitter {
  /** Names this module uses from other modules: module -> names. */
  readonly imports = new Map<string, Set<string>>();
  /** Hoisted one-item readers/writers of non-named element types (for arrays). */
  readonly helpers = new Map<string, string>();
  usesXdrError = false;
  usesUuid = false;

  constructor(
    readonly model: Model,
    readonly module: string,
  ) {}

  ref(name: string, from: string): void {
    if (from === this.module) return;
    let s = this.imports.get(from);
    if (!s) this.imports.set(from, (s = new Set()));
    s.add(name);
  }

  /** A bound or size as code: the constant's name (imported if needed) or the number. */
  value(v: ValueRef): string {
    if ('num' in v) return numLiteral(v.num);
    const c = this.model.consts.get(v.name);
    if (!c) throw new Error(`unknown constant ${v.name}`);
    this.ref(v.name, c.module);
    return v.name;
  }

  typeDef(name: string): { def: Definition; module: string } {
    const t = this.model.types.get(name);
    if (!t) throw new Error(`unknown type ${name}`);
    return t;
  }

  /** Whether a declaration is a UUID: fixed opaque of VIR_UUID_BUFLEN bytes (read as canonical text). */
  isUuid(d: Declaration): boolean {
    if (d.type.kind === 'opaque' && d.array?.fixed) {
      return 'name' in d.array.size ? d.array.size.name === 'VIR_UUID_BUFLEN' : false;
    }
    if (d.type.kind === 'named' && !d.array && !d.optional) {
      const t = this.model.types.get(d.type.name);
      return t?.def.kind === 'typedef' && this.isUuid(t.def.decl);
    }
    return false;
  }

  /** Whether a value may be null: `T *x`, or a typedef of one (remote_string, remote_domain...). */
  isOptional(d: Declaration): boolean {
    if (d.optional) return true;
    if (d.type.kind !== 'named' || d.array) return false;
    const t = this.model.types.get(d.type.name);
    return t?.def.kind === 'typedef' && this.isOptional(t.def.decl);
  }

  namedTs(name: string): string {
    const t = this.typeDef(name);
    const ts = pascal(name);
    this.ref(ts, t.module);
    return ts;
  }

  baseTs(type: TypeSpec, input: boolean): string {
    switch (type.kind) {
      case 'prim':
        return input && PRIM_TS[type.prim] === 'bigint' ? 'bigint | number' : PRIM_TS[type.prim]!;
      case 'string':
        return 'string';
      case 'opaque':
        return 'Buffer';
      case 'named':
        return this.namedTs(type.name);
    }
  }

  /** TS type of a declaration. `input`: for call parameters (hypers also accept a number). */
  ts(d: Declaration, input = false): string {
    if (this.isUuid(d)) return 'string';
    if (d.array) {
      if (d.type.kind === 'string') return 'string';
      if (d.type.kind === 'opaque') return input ? 'Uint8Array' : 'Buffer';
      const b = this.baseTs(d.type, input);
      return b.includes(' ') ? `(${b})[]` : `${b}[]`;
    }
    const b = this.baseTs(d.type, input);
    return d.optional ? `${b} | null` : b;
  }

  // --- decoding -------------------------------------------------------------------------------

  readBase(type: TypeSpec): string {
    switch (type.kind) {
      case 'prim':
        return `r.${PRIM_READ[type.prim]}()`;
      case 'named': {
        const t = this.typeDef(type.name);
        if (t.def.kind === 'enum') return 'r.int()';
        if (t.def.kind === 'typedef') return this.readExpr(t.def.decl);
        const fn = `read${pascal(type.name)}`;
        this.ref(fn, t.module);
        return `${fn}(r)`;
      }
      default:
        throw new Error(`bare ${type.kind} without a length`);
    }
  }

  readExpr(d: Declaration): string {
    if (this.isUuid(d)) return 'r.uuid()';
    if (d.optional) return `(r.bool() ? ${this.readBase(d.type)} : null)`;
    if (d.array) {
      if (d.type.kind === 'string') return d.array.fixed ? '' : `r.string(${d.array.max ? this.value(d.array.max) : ''})`;
      if (d.type.kind === 'opaque') {
        return d.array.fixed ? `r.opaqueFixed(${this.value(d.array.size)})` : `r.opaque(${d.array.max ? this.value(d.array.max) : ''})`;
      }
      const fn = this.readFn(d.type);
      return d.array.fixed
        ? `r.fixedArray(${this.value(d.array.size)}, ${fn})`
        : `r.array(${fn}${d.array.max ? `, ${this.value(d.array.max)}` : ''})`;
    }
    return this.readBase(d.type);
  }

  /** A function reading one item of `type` (arrays need one). */
  readFn(type: TypeSpec): string {
    if (type.kind === 'named') {
      const t = this.typeDef(type.name);
      if (t.def.kind !== 'enum') {
        const fn = `read${pascal(type.name)}`;
        this.ref(fn, t.module);
        return fn;
      }
    }
    const key = type.kind === 'prim' ? PRIM_READ[type.prim]! : 'int';
    const name = `read1${key[0]!.toUpperCase()}${key.slice(1)}`;
    const ts = type.kind === 'prim' ? PRIM_TS[type.prim]! : 'number';
    this.helpers.set(name, `const ${name} = (r: XdrReader): ${ts} => r.${key}();`);
    return name;
  }

  // --- encoding -------------------------------------------------------------------------------

  writeBase(type: TypeSpec, x: string): string {
    switch (type.kind) {
      case 'prim':
        return `w.${PRIM_READ[type.prim]}(${x});`;
      case 'named': {
        const t = this.typeDef(type.name);
        if (t.def.kind === 'enum') return `w.int(${x});`;
        if (t.def.kind === 'typedef') return this.writeStmt(t.def.decl, x);
        const fn = `write${pascal(type.name)}`;
        this.ref(fn, t.module);
        return `${fn}(w, ${x});`;
      }
      default:
        throw new Error(`bare ${type.kind} without a length`);
    }
  }

  writeStmt(d: Declaration, x: string): string {
    if (this.isUuid(d)) return `w.uuid(${x});`;
    if (d.optional) return `if (${x} == null) w.bool(false); else { w.bool(true); ${this.writeBase(d.type, x)} }`;
    if (d.array) {
      if (d.type.kind === 'string') return `w.string(${x}${d.array.fixed ? '' : d.array.max ? `, ${this.value(d.array.max)}` : ''});`;
      if (d.type.kind === 'opaque') {
        return d.array.fixed
          ? `w.opaqueFixed(${x}, ${this.value(d.array.size)});`
          : `w.opaque(${x}${d.array.max ? `, ${this.value(d.array.max)}` : ''});`;
      }
      const fn = this.writeFn(d.type);
      return d.array.fixed
        ? `w.fixedArray(${x}, ${this.value(d.array.size)}, ${fn});`
        : `w.array(${x}, ${fn}${d.array.max ? `, ${this.value(d.array.max)}` : ''});`;
    }
    return this.writeBase(d.type, x);
  }

  writeFn(type: TypeSpec): string {
    if (type.kind === 'named') {
      const t = this.typeDef(type.name);
      if (t.def.kind !== 'enum') {
        const fn = `write${pascal(type.name)}`;
        this.ref(fn, t.module);
        return fn;
      }
    }
    const key = type.kind === 'prim' ? PRIM_READ[type.prim]! : 'int';
    const name = `write1${key[0]!.toUpperCase()}${key.slice(1)}`;
    const ts = type.kind === 'prim' ? PRIM_TS[type.prim]! : 'number';
    const tsIn = ts === 'bigint' ? 'bigint | number' : ts;
    this.helpers.set(name, `const ${name} = (w: XdrWriter, v: ${tsIn}): void => { w.${key}(v); };`);
    return name;
  }

  unionCaseValue(v: ValueRef): string {
    return numLiteral(valueOf(v, this.model.consts));
  }
}

const HEADER = (sources: string[]) =>
  `// Generated by scripts/gen-protocol.ts from libvirt ${LIBVIRT_VERSION} (${sources.join(', ')}). Do not edit.\n`;

function importLines(e: Emitter, extra: string[] = []): string {
  const lines: string[] = [];
  const xdr = ['XdrReader', 'XdrWriter'];
  lines.push(`import type { ${xdr.join(', ')} } from '../xdr.js';`);
  if (e.usesXdrError) lines.push(`import { XdrError } from '../errors.js';`);
  lines.push(...extra);
  for (const mod of [...e.imports.keys()].sort()) {
    const names = [...e.imports.get(mod)!].sort();
    const typeOnly = names.filter((n) => /^[A-Z][a-z]/.test(n) && !/^[A-Z0-9_]+$/.test(n));
    const values = names.filter((n) => !typeOnly.includes(n));
    const spec = [...values, ...typeOnly.map((n) => `type ${n}`)].sort((a, b) => a.replace('type ', '').localeCompare(b.replace('type ', '')));
    lines.push(`import { ${spec.join(', ')} } from './${mod.replace(/\.ts$/, '.js')}';`);
  }
  return lines.join('\n') + '\n';
}

function genTypesModule(model: Model, m: Module): string {
  const e = new Emitter(model, m.file);
  const body: string[] = [];
  for (const d of m.defs) {
    switch (d.kind) {
      case 'const': {
        const v = valueOf(d.value, model.consts);
        // Program numbers read best in hex, as libvirt writes them.
        body.push(`export const ${d.name} = ${d.name.endsWith('_PROGRAM') ? '0x' + v.toString(16) : numLiteral(v)};`);
        break;
      }
      case 'enum': {
        body.push(`\n/** enum ${d.name} */`);
        body.push(`export type ${pascal(d.name)} = number;`);
        for (const mem of d.members) body.push(`export const ${mem.name} = ${numLiteral(valueOf(mem.value, model.consts))};`);
        break;
      }
      case 'typedef': {
        const n = pascal(d.decl.name);
        const ts = e.ts(d.decl);
        body.push(`\n/** typedef ${d.decl.name} */`);
        body.push(`export type ${n} = ${ts};`);
        body.push(`export function read${n}(r: XdrReader): ${n} {\n  return ${e.readExpr(d.decl)};\n}`);
        body.push(`export function write${n}(w: XdrWriter, v: ${e.ts(d.decl, true)}): void {\n  ${e.writeStmt(d.decl, 'v')}\n}`);
        break;
      }
      case 'struct': {
        const n = pascal(d.name);
        body.push(`\n/** struct ${d.name} */`);
        body.push(`export interface ${n} {\n${d.fields.map((f) => `  ${f.name}: ${e.ts(f)};`).join('\n')}\n}`);
        body.push(
          `export function read${n}(r: XdrReader): ${n} {\n  return {\n${d.fields.map((f) => `    ${f.name}: ${e.readExpr(f)},`).join('\n')}\n  };\n}`,
        );
        body.push(
          `export function write${n}(w: XdrWriter, v: ${n}): void {\n${d.fields.map((f) => `  ${e.writeStmt(f, `v.${f.name}`)}`).join('\n')}\n}`,
        );
        break;
      }
      case 'union': {
        const n = pascal(d.name);
        const dn = d.discriminant.name;
        const dts = e.ts(d.discriminant);
        const armTs = (decl: Declaration | null, disc: string) => (decl ? `{ ${dn}: ${disc}; ${decl.name}: ${e.ts(decl)} }` : `{ ${dn}: ${disc} }`);
        const variants: string[] = [];
        for (const a of d.arms) variants.push(armTs(a.decl, a.cases.map((c) => e.unionCaseValue(c)).join(' | ')));
        if (d.default) variants.push(armTs(d.default.decl, dts));
        body.push(`\n/** union ${d.name} switch (${dts === 'boolean' ? 'bool' : 'int'} ${dn}) */`);
        body.push(`export type ${n} =\n${variants.map((v) => `  | ${v}`).join('\n')};`);
        const readArm = (decl: Declaration | null) => (decl ? `return { ${dn}, ${decl.name}: ${e.readExpr(decl)} } as ${n};` : `return { ${dn} } as ${n};`);
        const writeArm = (decl: Declaration | null) =>
          decl ? `${e.writeStmt(decl, `(v as { ${decl.name}: ${e.ts(decl)} }).${decl.name}`)} break;` : 'break;';
        const readCases: string[] = [];
        const writeCases: string[] = [];
        for (const a of d.arms) {
          const labels = a.cases.map((c) => `case ${e.unionCaseValue(c)}:`).join(' ');
          readCases.push(`    ${labels}\n      ${readArm(a.decl)}`);
          writeCases.push(`    ${labels}\n      ${writeArm(a.decl)}`);
        }
        if (d.default) {
          readCases.push(`    default:\n      ${readArm(d.default.decl)}`);
          writeCases.push(`    default:\n      ${writeArm(d.default.decl)}`);
        } else {
          e.usesXdrError = true;
          readCases.push(`    default:\n      throw new XdrError(\`${d.name}: unknown ${dn} \${${dn}}\`);`);
          writeCases.push(`    default:\n      throw new XdrError(\`${d.name}: unknown ${dn} \${String((v as { ${dn}: unknown }).${dn})}\`);`);
        }
        body.push(
          `export function read${n}(r: XdrReader): ${n} {\n  const ${dn} = ${e.readExpr(d.discriminant)};\n  switch (${dn}) {\n${readCases.join('\n')}\n  }\n}`,
        );
        body.push(
          `export function write${n}(w: XdrWriter, v: ${n}): void {\n  ${e.writeStmt(d.discriminant, `v.${dn}`)}\n  switch (v.${dn}) {\n${writeCases.join('\n')}\n  }\n}`,
        );
        break;
      }
    }
  }
  const helpers = [...e.helpers.keys()].sort().map((k) => e.helpers.get(k)!);
  return [HEADER(m.sources), importLines(e), ...(helpers.length ? [helpers.join('\n'), ''] : []), body.join('\n').trimStart(), ''].join('\n');
}

function genConstants(model: Model): string {
  const out: string[] = [HEADER([`${HEADER_DIR}/*.h`]), '/* Integer and string constants of the public headers: enum members and #defines. */'];
  for (const h of model.headers) {
    if (h.constants.length === 0) continue;
    out.push(`\n// ${h.file}`);
    let group = '';
    for (const c of h.constants) {
      if (c.group !== group && c.group !== 'define') out.push(`/** ${c.group} */`);
      group = c.group;
      out.push(`export const ${c.name} = ${typeof c.value === 'string' ? JSON.stringify(c.value) : numLiteral(c.value)};`);
    }
  }
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// Procedures: table and call stubs
// ---------------------------------------------------------------------------------------------

interface Procedure {
  enumName: string;
  method: string;
  proc: number;
  ann: ProcAnnotations;
  args?: Definition & { kind: 'struct' };
  ret?: Definition & { kind: 'struct' };
  msg?: Definition & { kind: 'struct' };
  mutating: boolean;
  stream?: 'read' | 'write';
}

function procedures(model: Model): Procedure[] {
  const remote = model.modules.find((m) => m.file === 'remote-protocol.ts')!;
  const en = remote.defs.find((d) => d.kind === 'enum' && d.name === 'remote_procedure');
  if (!en || en.kind !== 'enum') throw new Error('remote_protocol.x has no enum remote_procedure');
  const struct = (name: string) => {
    const t = model.types.get(name);
    return t?.def.kind === 'struct' ? (t.def as Definition & { kind: 'struct' }) : undefined;
  };
  return en.members.map((mem) => {
    const base = mem.name.replace(/^REMOTE_PROC_/, 'remote_').toLowerCase();
    const ann = parseAnnotations(mem.doc);
    const p: Procedure = {
      enumName: mem.name,
      method: procMethodName(mem.name),
      proc: Number(valueOf(mem.value, model.consts)),
      ann,
      mutating: isMutatingAcl(ann.acl),
    };
    const args = struct(`${base}_args`);
    const ret = struct(`${base}_ret`);
    const msg = struct(`${base}_msg`);
    if (args) p.args = args;
    if (ret) p.ret = ret;
    if (msg) p.msg = msg;
    if (ann.readstream !== undefined) p.stream = 'read';
    if (ann.writestream !== undefined) p.stream = 'write';
    return p;
  });
}

function genProcedures(model: Model, procs: Procedure[]): string {
  const lines = procs.map((p) => {
    const extra = [p.stream ? `stream: '${p.stream}'` : '', p.msg && !p.args ? 'event: true' : ''].filter(Boolean);
    return `  ${p.method}: { proc: ${p.proc}, mutating: ${p.mutating}${extra.length ? ', ' + extra.join(', ') : ''} },`;
  });
  return `${HEADER([REMOTE_X])}
/** What the generated table says about one procedure of REMOTE_PROGRAM. */
export interface ProcedureInfo {
  /** Procedure number on the wire. */
  readonly proc: number;
  /**
   * Whether the call changes host state: derived from its \`@acl\` annotations (any permission
   * other than getattr/read/read_secure/search_*, refresh, and opening consoles/graphics).
   */
  readonly mutating: boolean;
  /** A stream follows the reply: 'read' from the daemon, 'write' to it (\`@readstream\` / \`@writestream\`). */
  readonly stream?: 'read' | 'write';
  /** An event the daemon sends (MESSAGE with a \`_msg\` struct); not callable. */
  readonly event?: true;
}

/** Every procedure of remote_protocol.x, by camelCase name. */
export const PROCEDURES = {
${lines.join('\n')}
} as const satisfies Record<string, ProcedureInfo>;

export type ProcedureName = keyof typeof PROCEDURES;

/** Procedure number -> camelCase name. */
export const PROCEDURE_NAMES: ReadonlyMap<number, ProcedureName> = new Map(
  (Object.entries(PROCEDURES) as [ProcedureName, ProcedureInfo][]).map(([n, i]) => [i.proc, n]),
);
`;
}

function genCalls(model: Model, procs: Procedure[]): string {
  const e = new Emitter(model, 'calls.ts');
  const methods: string[] = [];
  const retFns: string[] = [];
  for (const p of procs) {
    if (p.msg && !p.args) continue; // server -> client events
    const params: { name: string; ts: string; dflt?: string; field: Declaration }[] = (p.args?.fields ?? []).map((f) => ({
      name: camelParam(f.name),
      ts: e.ts(f, true),
      field: f,
    }));
    for (let i = params.length - 1; i >= 0; i--) {
      const q = params[i]!;
      if (q.field.name === 'flags' && q.ts === 'number') q.dflt = '0';
      else if (e.isOptional(q.field)) q.dflt = 'null';
      else break;
    }
    let retTs = 'void';
    let dec = 'readVoid';
    if (p.ret && p.ret.fields.length === 1) {
      const f = p.ret.fields[0]!;
      retTs = e.ts(f);
      dec = `ret${pascal(p.method)}`;
      retFns.push(`const ${dec} = (r: XdrReader): ${retTs} => ${e.readExpr(f)};`);
    } else if (p.ret) {
      retTs = e.namedTs(p.ret.name);
      dec = `read${pascal(p.ret.name)}`;
      e.ref(dec, 'remote-protocol.ts');
    }
    const enc = p.args ? `(w) => {\n      ${params.map((q) => e.writeStmt(q.field, q.name)).join('\n      ')}\n    }` : 'undefined';
    const sig = params.map((q) => (q.dflt ? `${q.name}: ${q.ts} = ${q.dflt}` : `${q.name}: ${q.ts}`)).join(', ');
    const doc = [`${p.enumName} = ${p.proc}`];
    if (p.ann.acl.length) doc.push(`acl ${p.ann.acl.join(', ')}`);
    if (p.mutating) doc.push('mutating');
    if (p.stream) doc.push(`${p.stream} stream${p.ann.sparseflag ? ` (sparse: ${p.ann.sparseflag})` : ''}`);
    const body = p.stream
      ? `return this.rpcStream('${p.method}', ${enc}, ${dec}, '${p.stream}');`
      : `return this.rpc('${p.method}', ${enc}, ${dec});`;
    const rt = p.stream ? `Promise<{ ret: ${retTs}; stream: S }>` : `Promise<${retTs}>`;
    methods.push(`  /** ${doc.join('; ')} */\n  ${p.method}(${sig}): ${rt} {\n    ${body}\n  }`);
  }
  const helpers = [...e.helpers.keys()].sort().map((k) => e.helpers.get(k)!);
  return `${HEADER([REMOTE_X])}${importLines(e, [`import type { ProcedureName } from './procedures.js';`])}
const readVoid = (): void => undefined;
${helpers.join('\n')}
${retFns.join('\n')}

/**
 * One method per callable procedure of REMOTE_PROGRAM: the \`_args\` struct's fields are the
 * parameters (trailing \`flags\` default to 0 and trailing optional values to null), the result
 * is the \`_ret\` struct, or its only field when it has one. Procedures followed by a stream
 * resolve with the reply and the stream (\`S\`) that \`rpcStream\` opens.
 */
export abstract class RemoteCalls<S = unknown> {
  /** Sends the call and decodes the reply. */
  abstract rpc<T>(name: ProcedureName, encode: ((w: XdrWriter) => void) | undefined, decode: (r: XdrReader) => T): Promise<T>;
  /** Sends the call; after the reply the connection carries the procedure's stream. */
  abstract rpcStream<T>(
    name: ProcedureName,
    encode: ((w: XdrWriter) => void) | undefined,
    decode: (r: XdrReader) => T,
    direction: 'read' | 'write',
  ): Promise<{ ret: T; stream: S }>;

${methods.join('\n\n')}
}
`;
}

// ---------------------------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------------------------

/** Generates every output file from an unpacked libvirt source tree: file name -> content. */
export function generate(srcDir: string): Map<string, string> {
  const model = buildModel(srcDir);
  const procs = procedures(model);
  const out = new Map<string, string>();
  out.set('constants.ts', genConstants(model));
  for (const m of model.modules) out.set(m.file, genTypesModule(model, m));
  out.set('procedures.ts', genProcedures(model, procs));
  out.set('calls.ts', genCalls(model, procs));
  out.set(
    'index.ts',
    `${HEADER([REMOTE_X, ...NET_X, `${HEADER_DIR}/*.h`])}export * from './calls.js';\nexport * from './constants.js';\nexport * from './net-protocol.js';\nexport * from './procedures.js';\nexport * from './remote-protocol.js';\n`,
  );
  return out;
}

export function writeOutput(files: Map<string, string>, dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) if (f.endsWith('.ts') && !files.has(f)) rmSync(join(dir, f));
  for (const [name, text] of [...files].sort(([a], [b]) => a.localeCompare(b))) writeFileSync(join(dir, name), text);
}

/** Files that differ between two output directories (missing on either side counts). */
export function diffDirs(expected: string, actual: string): string[] {
  const list = (d: string) => (existsSync(d) ? readdirSync(d).filter((f) => f.endsWith('.ts')) : []);
  const names = [...new Set([...list(expected), ...list(actual)])].sort();
  return names.filter((n) => {
    const a = join(expected, n);
    const b = join(actual, n);
    return !existsSync(a) || !existsSync(b) || !readFileSync(a).equals(readFileSync(b));
  });
}

/** Runs scripts/fetch-libvirt-src.sh; returns the unpacked source dir, or null with its message. */
export function fetchSources(cache = DEFAULT_CACHE): { dir: string } | { error: string; unavailable: boolean } {
  try {
    const out = execFileSync('bash', [join(ROOT, 'scripts/fetch-libvirt-src.sh'), cache], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return { dir: out.trim().split('\n').at(-1)! };
  } catch (err) {
    const e = err as { status?: number; stderr?: string; message: string };
    return { error: (e.stderr || e.message).trim(), unavailable: e.status === 2 };
  }
}

function main(argv: string[]): number {
  const opt = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const check = argv.includes('--check');
  let src = opt('--src');
  if (!src) {
    const f = fetchSources(opt('--cache'));
    if ('error' in f) {
      console.error(
        `gen-protocol: cannot get libvirt ${LIBVIRT_VERSION}'s sources (Debian source package 'libvirt'): ${f.error}\n` +
          (f.unavailable ? 'The package could not be reached: nothing was generated or compared.' : ''),
      );
      return f.unavailable ? 2 : 1;
    }
    src = f.dir;
  }
  const files = generate(src);
  if (check) {
    const tmp = mkdtempSync(join(tmpdir(), 'vf-gen-protocol-'));
    try {
      writeOutput(files, tmp);
      const out = opt('--out') ?? OUT_DIR;
      const diff = diffDirs(tmp, out);
      if (diff.length) {
        console.error(`gen-protocol --check: ${diff.length} generated file(s) differ from ${out}:`);
        for (const d of diff) console.error(`  ${d}`);
        console.error('Run `npm run gen:protocol` and commit the result.');
        return 1;
      }
      console.log(`gen-protocol --check: ${files.size} files in ${out} match libvirt ${LIBVIRT_VERSION}'s sources.`);
      return 0;
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  const out = opt('--out') ?? OUT_DIR;
  writeOutput(files, out);
  console.log(`gen-protocol: wrote ${files.size} files to ${out}`);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
