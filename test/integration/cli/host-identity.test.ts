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
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, virsh, virshOk } from '../../support/real-host.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('hostid', {
  manifestDir: 'm',
  setup: () => {
    N.write(manifests());
  },
});
const P = N.base;
const NET = `${P}-net`;

const manifests = (): Record<string, string> => ({
  'net.yaml': `apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${NET}}
spec: {mode: isolated, cidr: ${N.cidr()}, autostart: false}
`,
});

afterAll(async () => {
  // Before the suite's prefix cleanup (after-hooks run in reverse order).
  if (N.work && existsSync(N.db)) {
    const empty = join(N.work, 'empty');
    mkdirSync(empty, { recursive: true });
    await runCli(['reconcile', empty, '--allow-empty', '--max-deletions', 'all', '--uri', 'qemu:///system', '--db', N.db]);
  }
});

const hostsRows = (): Record<string, unknown>[] => {
  const d = new Database(N.db, { readonly: true, fileMustExist: true });
  try {
    return d.prepare('select id, uri, driver, host_uuid from hosts').all() as Record<string, unknown>[];
  } finally {
    d.close();
  }
};

describe('state DB host identity, qemu:///system vs test+unix:///default', () => {
  it('a dry-run with a --db that does not exist: plans against an empty state, exit 0, creates nothing', async () => {
    const missing = join(N.work, 'typo', 'state.db');
    const r = await runCli(['reconcile', N.mdir, '--dry-run', '--uri', 'test+unix:///default', '--db', missing]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`state DB ${missing} does not exist: planning against an empty state`);
    expect(r.stdout).toContain(`+ Network/${NET}`);
    expect(existsSync(join(N.work, 'typo'))).toBe(false);
  });

  it('the first apply (qemu:///system) records the host: driver and libvirt host UUID', async () => {
    const r = await runCli(['reconcile', N.mdir, '--uri', 'qemu:///system', '--db', N.db]);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(virshOk('net-info', NET)).toBe(true);
    const uuid = /<host>\s*<uuid>([^<]+)<\/uuid>/.exec(virsh('capabilities'))?.[1] ?? null;
    expect(hostsRows()).toEqual([{ id: 'local', uri: 'qemu:///system', driver: 'qemu', host_uuid: uuid }]);
  });

  it('the same DB against test+unix:///default: dry-run refused, exit 1, both hosts named', async () => {
    const r = await runCli(['reconcile', N.mdir, '--dry-run', '--uri', 'test+unix:///default', '--db', N.db]);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(1);
    expect(r.stderr).toContain(`state DB ${N.db} holds the records of host qemu:///system (driver qemu`);
    expect(r.stderr).toContain('different host: test+unix:///default (driver test, host UUID none');
    expect(r.stdout).not.toContain('Plan:');
    expect(hostsRows()).toMatchObject([{ uri: 'qemu:///system', driver: 'qemu' }]);
  });

  it('apply and watch against test+unix:///default are refused the same way', async () => {
    const apply = await runCli(['reconcile', N.mdir, '--uri', 'test+unix:///default', '--db', N.db]);
    expect(apply.code, apply.stderr).toBe(1);
    expect(apply.stderr).toContain('holds the records of host qemu:///system');
    const watch = await runCli(['watch', N.mdir, '--no-listen', '--uri', 'test+unix:///default', '--db', N.db], {}, 60_000);
    expect(watch.code, watch.stderr).toBe(1);
    expect(watch.stderr).toContain('holds the records of host qemu:///system');
    expect(hostsRows()).toMatchObject([{ uri: 'qemu:///system', driver: 'qemu' }]);
  });

  it('the recorded host itself is still accepted: dry-run "No changes.", exit 0', async () => {
    const r = await runCli(['reconcile', N.mdir, '--dry-run', '--uri', 'qemu:///system', '--db', N.db]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('No changes.');
  });
});
