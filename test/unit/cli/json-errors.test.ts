/**
 * virtform issue #12: `reconcile --json` with invalid manifests printed the errors as text on
 * stderr and nothing on stdout. With --json, `reconcile`, `reconcile --dry-run` and `validate`
 * print one JSON document on stdout listing every error with all of
 * {file, line, col, kind, name, field, message} (null when unknown), and exit 2.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { runReconcile, type ReconcileFlags } from '../../../src/cli/commands/reconcile.js';
import { runValidate } from '../../../src/cli/commands/validate.js';
import { LibvirtClient } from '../../../src/libvirt/index.js';
import { tempDir, writeManifests } from '../../support/manifests.js';
import { capture } from '../../support/cli.js';

const work = tempDir('vftest-cli-json-');
const dir = writeManifests(join(work, 'm'), {
  'a.yaml': `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: vm1}
spec: {vcpus: 0, memory: 64MiB, nics: [{network: nosuch}]}
`,
  'b.yaml': 'apiVersion: virtform.dev/v1\nkind: [unclosed\n',
});
const db = join(work, 'db', 'state.db');
const flags: ReconcileFlags = {
  uri: 'qemu+unix:///system?socket=/tmp/vftest-nonexistent.sock', db, json: true,
  concurrency: 1, maxAttempts: 1, retryDelay: 0, shutdownTimeout: 1, color: false,
};
const KEYS = ['col', 'field', 'file', 'kind', 'line', 'message', 'name'];

afterEach(() => vi.restoreAllMocks());
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Doc { errors: Record<string, unknown>[]; outcome?: string; valid?: boolean; dryRun?: boolean }

function checkErrors(doc: Doc): void {
  expect(doc.errors.length).toBe(3);
  for (const e of doc.errors) expect(Object.keys(e).sort()).toEqual(KEYS);
  expect(doc.errors).toContainEqual(expect.objectContaining({
    file: join(dir, 'a.yaml'), line: 4, kind: 'VirtualMachine', name: 'vm1', field: 'spec.vcpus',
  }));
  expect(doc.errors).toContainEqual(expect.objectContaining({ kind: 'VirtualMachine', name: 'vm1', field: 'spec.nics[0].network' }));
  expect(doc.errors).toContainEqual(expect.objectContaining({ file: join(dir, 'b.yaml'), kind: null, name: null, field: null }));
}

describe('--json with invalid input', () => {
  it.each([false, true])('reconcile --json (dryRun=%s): a JSON document with every error on stdout, exit 2', async (dryRun) => {
    const connect = vi.spyOn(LibvirtClient, 'connect');
    const r = await capture(() => runReconcile(dir, { ...flags, dryRun }));
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout) as Doc;
    expect(doc.outcome).toBe('invalid');
    expect(doc.dryRun).toBe(dryRun);
    checkErrors(doc);
    expect(connect).not.toHaveBeenCalled();
    expect(existsSync(join(work, 'db'))).toBe(false);
  });

  it('validate --json: the same error list, every key present', async () => {
    const r = await capture(() => runValidate(dir, { json: true }));
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout) as Doc;
    expect(doc.valid).toBe(false);
    checkErrors(doc);
  });

  it('reconcile --json on a file or an empty folder: a JSON document naming the path, exit 2', async () => {
    const empty = join(work, 'empty');
    mkdirSync(empty, { recursive: true });
    for (const [path, text] of [[join(dir, 'a.yaml'), 'is not a folder'], [empty, 'no manifests found']] as const) {
      const r = await capture(() => runReconcile(path, { ...flags, dryRun: true }));
      expect(r.code).toBe(2);
      const doc = JSON.parse(r.stdout) as Doc;
      expect(doc.outcome).toBe('invalid');
      expect(doc.errors).toEqual([expect.objectContaining({ file: path, kind: null, name: null, field: null })]);
      expect(doc.errors[0]!.message).toContain(text);
    }
  });
});
