/**
 * `virtform export [NAME…] [--all] [--include-managed] [--out DIR] [--force] [--json]` (issue 24):
 * manifests for what already runs on a host, read from libvirt only (never the state DB), each
 * with `metadata.adopt: true`, so `reconcile` takes the objects over without changing them.
 *
 * Output: with `--out DIR`, one file per object (`vm-NAME.yaml`, `volume-NAME.yaml`,
 * `network-NAME.yaml`, `pool-NAME.yaml`: a change of one object is a change of one file in git);
 * else one multi-document YAML stream on stdout. Warnings (what a manifest cannot carry over, an
 * object that cannot be one) go to stderr, into the file as comments, and into `--json`.
 *
 * Exit codes: 0 everything selected was exported as it is; 3 something was not (an object left
 * out, or an element its manifest would not keep: the warnings say which; the rest is written);
 * 2 bad input, nothing written (an unknown NAME, neither NAME nor --all, files in DIR that exist
 * without --force); 1 libvirt unreachable or a write failed.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Document } from 'yaml';
import { openHost } from '../../reconcile/adapters/libvirt-host.js';
import { exportHostObjects } from '../../reconcile/kinds/index.js';
import { selectExports, type ExportedObject } from '../../reconcile/export.js';
import { printable } from '../../util/printable.js';
import { EXIT, errorMessage, loadDesired } from '../common.js';

export interface ExportOptions {
  uri: string;
  all?: boolean;
  includeManaged?: boolean;
  out?: string;
  force?: boolean;
  json?: boolean;
}

export interface ExportIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

/** One manifest as YAML: its comments (and warnings) above it. */
export function manifestYaml(o: ExportedObject): string {
  const doc = new Document(o.doc);
  const lines = [
    `exported by virtform export from ${o.object}`,
    ...o.comments,
    ...o.warnings.map((w) => `WARNING: ${w}`),
  ];
  doc.commentBefore = lines.map((l) => ` ${l.replace(/[\r\n]+/g, ' ')}`).join('\n');
  return doc.toString({ lineWidth: 0 });
}

/**
 * For virtform's own objects with alternatives (a VM's domainType declared or not): the manifest
 * whose spec hash is the owner marker's, found by loading the manifests as `reconcile` would.
 */
async function matchMarkers(objects: ExportedObject[]): Promise<void> {
  const open = objects.filter((o) => o.doc && o.markerHash && o.alternatives?.length);
  if (open.length === 0) return;
  const dir = mkdtempSync(join(tmpdir(), 'virtform-export-'));
  try {
    const hashes = async (): Promise<Map<string, string> | undefined> => {
      for (const o of objects) if (o.doc) writeFileSync(join(dir, o.file), manifestYaml(o));
      const loaded = await loadDesired(dir);
      return loaded.ok ? new Map(loaded.desired.resources.map((r) => [`${r.kind}/${r.name}`, r.specHash])) : undefined;
    };
    let now = await hashes();
    for (const o of open) {
      if (!now || now.get(`${o.kind}/${o.name}`) === o.markerHash) continue;
      const first = o.doc;
      for (const alt of o.alternatives!) {
        o.doc = alt;
        now = await hashes();
        if (now?.get(`${o.kind}/${o.name}`) === o.markerHash) break;
        o.doc = first;
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runExport(names: string[], o: ExportOptions, io: ExportIo = process): Promise<number> {
  const fail = (code: number, message: string): number => {
    if (o.json) io.stdout.write(`${JSON.stringify({ ok: false, error: message }, null, 2)}\n`);
    io.stderr.write(`virtform export: ${message}\n`);
    return code;
  };
  if (names.length === 0 && !o.all && !o.includeManaged) {
    return fail(EXIT.invalid, 'name the objects to export (VM, volume, network or pool names), or give --all (every object without virtform\'s owner marker) or --include-managed (every object)');
  }
  if (o.out !== undefined && existsSync(o.out) && !statSync(o.out).isDirectory()) return fail(EXIT.invalid, `--out ${printable(o.out)} is not a folder`);

  let objects: ExportedObject[];
  try {
    const host = await openHost(o.uri);
    try {
      objects = await exportHostObjects(host);
    } finally {
      // safe-catch: closing the read-only connection on the way out; the result is already read
      await host.close().catch(() => undefined);
    }
  } catch (e) {
    return fail(EXIT.failure, errorMessage(e));
  }
  const sel = selectExports(objects, { names, all: !!o.all, includeManaged: !!o.includeManaged });
  if (!sel.ok) return fail(EXIT.invalid, sel.errors.join('; '));
  const chosen = sel.objects;
  await matchMarkers(chosen);
  const written = chosen.filter((x) => x.doc !== undefined);

  const files = new Map<ExportedObject, string>();
  if (o.out !== undefined) {
    for (const x of written) files.set(x, join(o.out, x.file));
    const existing = [...files.values()].filter((f) => existsSync(f));
    if (existing.length > 0 && !o.force) {
      return fail(EXIT.invalid, `${existing.map((f) => printable(f)).join(', ')} exist${existing.length === 1 ? 's' : ''}: nothing written (--force overwrites)`);
    }
    try {
      mkdirSync(o.out, { recursive: true });
      for (const [x, f] of files) writeFileSync(f, manifestYaml(x));
    } catch (e) {
      return fail(EXIT.failure, `writing ${printable(o.out)}: ${errorMessage(e)}`);
    }
  }
  const incomplete = chosen.some((x) => x.doc === undefined || x.warnings.length > 0);
  const code = incomplete ? EXIT.changes : EXIT.ok;

  if (o.json) {
    io.stdout.write(`${JSON.stringify({
      ok: !incomplete,
      objects: chosen.map((x) => ({
        kind: x.kind, name: x.name, object: x.object, managed: x.managed,
        exported: x.doc !== undefined, ...(files.has(x) ? { file: files.get(x) } : {}),
        warnings: x.warnings, ...(x.doc ? { manifest: x.doc } : {}),
      })),
    }, null, 2)}\n`);
  } else if (o.out === undefined) {
    io.stdout.write(written.map(manifestYaml).join('---\n'));
  }
  for (const x of chosen) {
    for (const w of x.warnings) io.stderr.write(`warning: ${x.kind}/${x.name} (${x.object}): ${printable(w)}\n`);
    if (x.doc === undefined) io.stderr.write(`not exported: ${x.kind}/${x.name} (${x.object})\n`);
  }
  if (!o.json) {
    const left = chosen.length - written.length;
    io.stderr.write(`${written.length} manifest${written.length === 1 ? '' : 's'} ${o.out !== undefined ? `written to ${printable(o.out)}` : 'exported'}` +
      `${left ? `, ${left} object${left === 1 ? '' : 's'} not exported` : ''}` +
      `${incomplete ? ' (warnings above: exit 3)' : ''}\n`);
  }
  return code;
}
