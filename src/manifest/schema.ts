/**
 * JSON Schema validation of manifest documents with ajv (draft 2020-12).
 *
 * Schemas are read at runtime from `<package root>/schemas/`, found relative to this module so it
 * works from `src/manifest/` (tsx, vitest) and from `dist/manifest/` (after tsc) alike.
 * Validation fills schema defaults into the data (`useDefaults`).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Ajv2020, ErrorObject, Options, ValidateFunction } from 'ajv/dist/2020.js';
import type { ManifestKind } from './model.js';
import { fieldPathString, quote as quoteValue, type FieldPath } from './errors.js';
import { PRECOMPILED } from './validators.js';

export const SCHEMA_DIR = fileURLToPath(new URL('../../schemas/', import.meta.url));

const KIND_FILES: Record<ManifestKind, string> = {
  StoragePool: 'storagepool.schema.json',
  Volume: 'volume.schema.json',
  Network: 'network.schema.json',
  VirtualMachine: 'virtualmachine.schema.json',
  Snapshot: 'snapshot.schema.json',
  Host: 'host.schema.json',
};

/** Every schema validated against: the manifest kinds and the policy file. */
type SchemaName = ManifestKind | 'Policy';
const POLICY_FILE = 'policy.schema.json';

let validators: Record<SchemaName, ValidateFunction> | undefined;

function readSchema(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(`${SCHEMA_DIR}${file}`, 'utf8')) as Record<string, unknown>;
}

/**
 * The ajv instance with every schema added, and the `$id` of each schema by name. The one place
 * the options are set: the run-time compilation below and the build's standalone code
 * (scripts/build-cli.mjs passes `code` options) both come from here.
 */
export function createAjv(extra: Partial<Options> = {}): { ajv: Ajv2020; refs: Record<SchemaName, string> } {
  // Loaded here, not at the top: the bundled CLI's validators are precompiled and never load ajv's compiler.
  const { Ajv2020: Ajv } = createRequire(import.meta.url)('ajv/dist/2020.js') as typeof import('ajv/dist/2020.js');
  const ajv = new Ajv({ allErrors: true, useDefaults: true, verbose: true, strict: true, allowUnionTypes: true, ...extra });
  ajv.addKeyword({ keyword: PATTERN_MESSAGE_KEYWORD, schemaType: 'string' });
  ajv.addSchema(readSchema('common.schema.json'));
  const refs = {} as Record<SchemaName, string>;
  for (const [name, file] of [...Object.entries(KIND_FILES), ['Policy', POLICY_FILE]] as [SchemaName, string][]) {
    const schema = readSchema(file);
    ajv.addSchema(schema);
    refs[name] = String(schema.$id);
  }
  return { ajv, refs };
}

/**
 * The validators: the bundled CLI's, compiled at build time (`PRECOMPILED`); else (tsc's dist/,
 * tsx, vitest) compiled from schemas/ at first use.
 */
function getValidators(): Record<SchemaName, ValidateFunction> {
  if (validators) return validators;
  if (PRECOMPILED) return (validators = PRECOMPILED as Record<SchemaName, ValidateFunction>);
  const { ajv, refs } = createAjv();
  const out = {} as Record<SchemaName, ValidateFunction>;
  for (const [name, ref] of Object.entries(refs) as [SchemaName, string][]) out[name] = ajv.getSchema(ref)!;
  validators = out;
  return out;
}

/** A schema problem: field path, whether to point at the key rather than the value, and a message. */
export interface SchemaProblem {
  path: FieldPath;
  atKey: boolean;
  /** Path of the node to point at when it differs from `path` (missing fields point at their parent). */
  locatePath: FieldPath;
  message: string;
}

/** Annotation keyword next to `pattern`: the human message for a pattern mismatch. */
export const PATTERN_MESSAGE_KEYWORD = 'x-pattern-message';

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'object') return Object.getPrototypeOf(v) === Object.prototype ? 'mapping' : 'tagged value';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/** Decode an ajv instancePath into segments, with numeric segments where the data has arrays. */
function decodePath(instancePath: string, data: unknown): FieldPath {
  if (!instancePath) return [];
  const out: FieldPath = [];
  let cur: unknown = data;
  for (const raw of instancePath.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) {
      out.push(Number(seg));
      cur = cur[Number(seg)];
    } else {
      out.push(seg);
      cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[seg] : undefined;
    }
  }
  return out;
}

/** Fields whose values may be secrets (cloud-init user-data, meta-data, network-config): never echoed in a message. */
export function isSecretField(path: FieldPath): boolean {
  return path[0] === 'spec' && path[1] === 'cloudInit' && (path[2] === 'userData' || path[2] === 'metaData' || path[2] === 'networkConfig');
}

function describe(e: ErrorObject, path: FieldPath): SchemaProblem | undefined {
  const p = e.params as Record<string, unknown>;
  const parent = (e.parentSchema ?? {}) as Record<string, unknown>;
  const secret = isSecretField(path);
  const value = e.data;
  // A secret's value is described by its type only.
  const quote = (v: unknown, max?: number): string => (secret && v === value ? `(a ${typeName(v)}; not shown)` : quoteValue(v, max));
  const base = { path, atKey: false, locatePath: path };
  switch (e.keyword) {
    case 'required': {
      const missing = String(p.missingProperty);
      return { path: [...path, missing], atKey: false, locatePath: path, message: `missing required field "${missing}"` };
    }
    case 'additionalProperties': {
      const extra = String(p.additionalProperty);
      const allowed = Object.keys((parent.properties ?? {}) as object);
      return {
        path: [...path, extra],
        atKey: true,
        locatePath: [...path, extra],
        message: `unknown field ${quote(extra)}${allowed.length ? ` (allowed: ${allowed.join(', ')})` : ''}`,
      };
    }
    case 'type': {
      const want = Array.isArray(p.type) ? (p.type as string[]).join(' or ') : String(p.type);
      if (want.startsWith('a ')) return { ...base, message: `must be ${want}, got ${typeName(value)}${typeof value === 'number' ? ` ${quote(value)}` : ''}` };
      const article = want === 'object' ? 'a mapping' : want === 'array' ? 'a list' : want === 'integer' ? 'an integer' : `a ${want}`;
      return { ...base, message: `must be ${article}, got ${typeName(value)}${typeof value === 'number' || typeof value === 'string' ? ` ${quote(value)}` : ''}` };
    }
    case 'enum':
      return { ...base, message: `must be one of ${(p.allowedValues as unknown[]).map((v) => String(v)).join(', ')}, got ${quote(value)}` };
    case 'const':
      return { ...base, message: `must be ${quote(p.allowedValue)}, got ${quote(value)}` };
    case 'pattern': {
      const custom = parent[PATTERN_MESSAGE_KEYWORD];
      if (e.propertyName !== undefined) {
        const key = e.propertyName;
        const why = typeof custom === 'string' ? `: ${custom}` : '';
        return { path: [...path, key], atKey: true, locatePath: [...path, key], message: `invalid key ${quote(key)}${why}` };
      }
      const msg = typeof custom === 'string' ? custom : `must match ${String(p.pattern)}`;
      return { ...base, message: `${msg}, got ${quote(value)}` };
    }
    case 'propertyNames':
      return undefined; // reported by the nested pattern error, at the key
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
      return { ...base, message: `must be ${String(p.comparison)} ${String(p.limit)}, got ${quote(value)}` };
    default:
      return { ...base, message: e.message ?? `fails ${e.keyword}` };
  }
}

/**
 * A failed `oneOf` (e.g. Volume `spec.source`: a path or `{url, sha256}`) makes ajv report every
 * branch's errors. Keep those of the branch the value's type selects (a string: the first that
 * does not fail on type); when no branch takes that type, one error saying what is accepted.
 */
function pickOneOfBranch(errors: ErrorObject[]): ErrorObject[] {
  let out = errors;
  for (const one of errors.filter((e) => e.keyword === 'oneOf')) {
    const prefix = `${one.schemaPath}/`;
    const inBranch = (e: ErrorObject): number | undefined => {
      if (!e.schemaPath.startsWith(prefix)) return undefined;
      const i = Number(e.schemaPath.slice(prefix.length).split('/')[0]);
      return Number.isInteger(i) ? i : undefined;
    };
    const branches = ((one.parentSchema as { oneOf?: { type?: string; title?: string }[] } | undefined)?.oneOf ?? []);
    const typeFails = new Set(out.filter((e) => e.keyword === 'type' && e.instancePath === one.instancePath).map(inBranch));
    const chosen = branches.findIndex((_b, i) => !typeFails.has(i));
    out = out.filter((e) => e !== one && (inBranch(e) === undefined || inBranch(e) === chosen));
    if (chosen < 0) {
      const kinds = branches.map((b) => (b.type === 'object' ? 'a mapping' : `a ${b.type ?? 'value'}`)).join(' or ');
      out.push({ ...one, keyword: 'type', params: { type: kinds }, message: undefined } as ErrorObject);
    }
  }
  return out;
}

/** Validate one document against its kind's schema (filling defaults). */
export function validateAgainstSchema(kind: ManifestKind, data: unknown): SchemaProblem[] {
  const validate = getValidators()[kind];
  if (validate(data)) return [];
  const problems: SchemaProblem[] = [];
  for (const e of pickOneOfBranch(validate.errors ?? [])) {
    const path = decodePath(e.instancePath, data);
    const problem = describe(e, path);
    if (problem) problems.push(problem);
  }
  return problems;
}

/** Validate a policy document against `schemas/policy.schema.json`. */
export function validatePolicyAgainstSchema(data: unknown): SchemaProblem[] {
  const validate = getValidators().Policy;
  if (validate(data)) return [];
  const problems: SchemaProblem[] = [];
  for (const e of validate.errors ?? []) {
    const problem = describe(e, decodePath(e.instancePath, data));
    if (problem) problems.push(problem);
  }
  return problems;
}

export { fieldPathString };
