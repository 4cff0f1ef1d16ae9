/**
 * virtform issue #12, against the real libvirtd: a state DB records the host it describes, and a
 * DB holding the records of one host, used against another, is refused (exit 1, both named)
 * instead of reporting everything as drift. Also: a dry-run with a --db that does not exist plans
 * against an empty state and creates nothing.
 *
 * libvirt's test driver keeps its state only as long as its connection, so the first apply (one
 * isolated network `vftest-hostid-*`, no VMs) goes to qemu:///system; the other host is
 * test+unix:///default. Everything created is deleted again (an --allow-empty apply, then the
 * prefix cleanup).
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli, virsh, virshOk } from '../../support/real-host.js';
import { writeManifests } from '../../support/manifests.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('hostid');
const P = N.base;
const NET = `${P}-net`;
let work: string;
let mdir: string;
let db: string;

const manifests = (): Record<string, string> => ({
  'net.yaml': `apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${NET}}
spec: {mode: isolated, cidr: ${N.cidr()}, autostart: false}
`,
});

beforeAll(() => {
  N.cleanup();
  ensureBuilt();
  work = N.tempDir();
  mdir = writeManifests(join(work, 'm'), manifests());
  db = join(work, 'state.db');
});
afterAll(async () => {
  try {
    if (work && existsSync(db)) {
      const empty = join(work, 'empty');
      mkdirSync(empty, { recursive: true });
      await runCli(['reconcile', empty, '--allow-empty', '--max-deletions', 'all', '--uri', 'qemu:///system', '--db', db]);
    }
  } finally {
    N.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
  }
});

const hostsRows = (): Record<string, unknown>[] => {
  const d = new Database(db, { readonly: true, fileMustExist: true });
  try {
    return d.prepare('select id, uri, driver, host_uuid from hosts').all() as Record<string, unknown>[];
  } finally {
    d.close();
  }
};

describe('state DB host identity, qemu:///system vs test+unix:///default', () => {
  it('a dry-run with a --db that does not exist: plans against an empty state, exit 0, creates nothing', async () => {
    const missing = join(work, 'typo', 'state.db');
    const r = await runCli(['reconcile', mdir, '--dry-run', '--uri', 'test+unix:///default', '--db', missing]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`state DB ${missing} does not exist: planning against an empty state`);
    expect(r.stdout).toContain(`+ Network/${NET}`);
    expect(existsSync(join(work, 'typo'))).toBe(false);
  });

  it('the first apply (qemu:///system) records the host: driver and libvirt host UUID', async () => {
    const r = await runCli(['reconcile', mdir, '--uri', 'qemu:///system', '--db', db]);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(virshOk('net-info', NET)).toBe(true);
    const uuid = /<host>\s*<uuid>([^<]+)<\/uuid>/.exec(virsh('capabilities'))?.[1] ?? null;
    expect(hostsRows()).toEqual([{ id: 'local', uri: 'qemu:///system', driver: 'qemu', host_uuid: uuid }]);
  });

  it('the same DB against test+unix:///default: dry-run refused, exit 1, both hosts named', async () => {
    const r = await runCli(['reconcile', mdir, '--dry-run', '--uri', 'test+unix:///default', '--db', db]);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(1);
    expect(r.stderr).toContain(`state DB ${db} holds the records of host qemu:///system (driver qemu`);
    expect(r.stderr).toContain('different host: test+unix:///default (driver test, host UUID none');
    expect(r.stdout).not.toContain('Plan:');
    expect(hostsRows()).toMatchObject([{ uri: 'qemu:///system', driver: 'qemu' }]);
  });

  it('apply and watch against test+unix:///default are refused the same way', async () => {
    const apply = await runCli(['reconcile', mdir, '--uri', 'test+unix:///default', '--db', db]);
    expect(apply.code, apply.stderr).toBe(1);
    expect(apply.stderr).toContain('holds the records of host qemu:///system');
    const watch = await runCli(['watch', mdir, '--no-listen', '--uri', 'test+unix:///default', '--db', db], {}, 60_000);
    expect(watch.code, watch.stderr).toBe(1);
    expect(watch.stderr).toContain('holds the records of host qemu:///system');
    expect(hostsRows()).toMatchObject([{ uri: 'qemu:///system', driver: 'qemu' }]);
  });

  it('the recorded host itself is still accepted: dry-run "No changes.", exit 0', async () => {
    const r = await runCli(['reconcile', mdir, '--dry-run', '--uri', 'qemu:///system', '--db', db]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('No changes.');
  });
});
