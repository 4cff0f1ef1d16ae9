/**
 * NoCloud seed: the ISO 9660 image (volume label `cidata`) that cloud-init's NoCloud datasource
 * reads from a CD-ROM, with `user-data`, `meta-data` and, when given, `network-config` in its root.
 *
 * - user-data: the text as given (cloud-config, a script, MIME multipart...); empty when not given
 *   (cloud-init requires the file to exist, not to hold anything).
 * - meta-data: YAML; the defaults `instance-id` and `local-hostname` (both the VM name) under the
 *   caller's metaData; sshAuthorizedKeys become `public-keys`, which cloud-init installs for the
 *   default user. Keep `instance-id` stable: cloud-init re-runs its per-instance modules when it
 *   changes.
 * - network-config: a network config version 1 or 2 object (top level `version`, or under
 *   `network:`), written as YAML, or YAML text used as given after the same check.
 *
 * The bytes depend only on the input (mapping keys are sorted, the ISO date is fixed), so the
 * sha256 digest identifies the content: a reconciler can compare it with the uploaded volume's.
 */
import { createHash } from 'node:crypto';
import { yamlLib } from '../util/yaml-lib.js';
import { buildIso9660 } from './iso9660.js';

export const SEED_LABEL = 'cidata';

export interface SeedInput {
  /** The VM name: the default instance-id and local-hostname. */
  vmName: string;
  userData?: string;
  metaData?: Record<string, unknown>;
  networkConfig?: Record<string, unknown> | string;
  sshAuthorizedKeys?: string[];
}

export interface SeedFile {
  name: 'user-data' | 'meta-data' | 'network-config';
  text: string;
}

export interface Seed {
  /** The ISO image. */
  iso: Uint8Array;
  /** Hex sha256 of `iso`. */
  sha256: string;
  /** The files as written into the image, in this order. */
  files: SeedFile[];
}

export class SeedError extends Error {
  override name = 'SeedError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** Builds the seed; throws SeedError (naming the field) on bad input. */
export function buildNoCloudSeed(input: SeedInput): Seed {
  const files = seedFiles(input);
  const iso = buildIso9660(
    files.map((f) => ({ name: f.name, data: f.text })),
    { volumeId: SEED_LABEL },
  );
  return { iso, sha256: createHash('sha256').update(iso).digest('hex'), files };
}

/** The seed's files without the image (for plan output and tests). */
export function seedFiles(input: SeedInput): SeedFile[] {
  if (typeof input.vmName !== 'string' || input.vmName.length === 0) throw new SeedError('vmName', 'must be a non-empty string');
  if (input.userData !== undefined && typeof input.userData !== 'string') throw new SeedError('userData', 'must be text');
  if (input.metaData !== undefined && !isPlainObject(input.metaData)) throw new SeedError('metaData', 'must be a mapping');

  const meta: Record<string, unknown> = { 'instance-id': input.vmName, 'local-hostname': input.vmName, ...input.metaData };
  for (const k of ['instance-id', 'local-hostname']) {
    if (typeof meta[k] !== 'string' || (meta[k] as string).length === 0) throw new SeedError(`metaData.${k}`, 'must be a non-empty string');
  }
  if (input.sshAuthorizedKeys !== undefined) {
    if (!Array.isArray(input.sshAuthorizedKeys)) throw new SeedError('sshAuthorizedKeys', 'must be a list of keys');
    input.sshAuthorizedKeys.forEach((k, i) => {
      if (typeof k !== 'string' || k.trim().length === 0 || /[\r\n]/.test(k)) {
        throw new SeedError(`sshAuthorizedKeys[${i}]`, 'must be one non-empty line (an OpenSSH public key)');
      }
    });
    if (input.metaData && 'public-keys' in input.metaData) {
      throw new SeedError('sshAuthorizedKeys', 'metaData also sets public-keys: give the keys in one place');
    }
    if (input.sshAuthorizedKeys.length > 0) meta['public-keys'] = input.sshAuthorizedKeys.map((k) => k.trim());
  }

  const files: SeedFile[] = [
    { name: 'user-data', text: input.userData ?? '' },
    { name: 'meta-data', text: yaml(meta) },
  ];
  if (input.networkConfig !== undefined) files.push({ name: 'network-config', text: networkConfigText(input.networkConfig) });
  return files;
}

function networkConfigText(nc: Record<string, unknown> | string): string {
  let obj: unknown;
  if (typeof nc === 'string') {
    const doc = yamlLib().parseDocument(nc, { version: '1.1' }); // as cloud-init (PyYAML) reads it
    if (doc.errors.length > 0) {
      // The parser's message quotes the text around the error: only where and what, never the text (it may hold secrets).
      const first = doc.errors[0]!;
      const at = first.linePos?.[0];
      throw new SeedError('networkConfig', `not valid YAML${at ? ` at line ${at.line}, column ${at.col} of the text` : ''} (${first.code}; the text is not shown)`);
    }
    if (!yamlLib().isMap(doc.contents)) throw new SeedError('networkConfig', 'must be a YAML mapping');
    obj = doc.toJS();
  } else if (isPlainObject(nc)) {
    obj = nc;
  } else {
    throw new SeedError('networkConfig', 'must be a mapping or YAML text');
  }
  const o = obj as Record<string, unknown>;
  const inner = isPlainObject(o.network) ? o.network : o;
  if (inner.version !== 1 && inner.version !== 2) {
    throw new SeedError('networkConfig', 'needs `version: 1` or `version: 2` (at the top or under `network:`)');
  }
  return typeof nc === 'string' ? nc : yaml(nc);
}

/**
 * cloud-init reads meta-data and network-config with PyYAML, a YAML 1.1 parser: there an unquoted
 * MAC address `52:54:00:12:34:56` is a base-60 integer and `yes`/`on`/`no` are booleans. Writing
 * with the YAML 1.1 schema quotes every such string.
 */
function yaml(v: unknown): string {
  return yamlLib().stringify(v, { version: '1.1', sortMapEntries: true, lineWidth: 0 });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
