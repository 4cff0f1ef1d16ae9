/**
 * Disk full and a read-only pool path, for real: tmpfs mounts under /var/lib/virtform-test.
 *   - vftest-faults-small: 2 MiB tmpfs; a raw volume imported from a 6 MiB random image → ENOSPC.
 *   - vftest-faults-ro: read-only tmpfs; creating a qcow2 volume there → EROFS (root is not stopped
 *     by permission bits, so a read-only mount is the closest real "permission denied").
 * Expect: exit 1, each failure names its resource, no partial volume file or libvirt volume is
 * left, and the rest of the plan (another pool, volume, network, VM) completes. Unmounted afterwards.
 *
 * And over TCP (issue 19, finding 6: this case hung for more than ten minutes): a second libvirtd
 * (test/support/test-host.ts, host `vfcidf`, INDEX 240-249) with a pool on an 8 MiB tmpfs mounted
 * inside that host's mount namespace; a URL import of a 24 MiB image served by a loopback HTTP
 * server in this test (virtform downloads it and uploads it through the stream over TCP). The run
 * fails within a bounded time with the daemon's ENOSPC, the journal closed, no volume left; with
 * space freed the rerun imports it.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, inventory, openJournal, orphans, runCli, TEST_POOL_ROOT } from '../support/real-host.js';
import { writeManifests } from '../support/manifests.js';
import { declaredFrom, ensureLibvirtd } from './support.js';
import { type TestHost, testHostDown, testHostsCleanup, testHostUp } from '../support/test-host.js';
import { suiteNames } from '../support/names.js';

const N = suiteNames('faults');
const P = N.base;
const SMALL = `${TEST_POOL_ROOT}/${P}-small`;
const RO = `${TEST_POOL_ROOT}/${P}-ro`;
const OK = `${TEST_POOL_ROOT}/${P}-okpool`;
const SRC = `/tmp/${P}-src/big.raw`;
const COMMON = ['--uri', 'qemu:///system', '--shutdown-timeout', '0', '--max-attempts', '1', '--allow-empty', '--allow-data-loss', '--max-deletions', 'all'];
let work: string;
let mounted = false;
let mountError = '';

const umount = (p: string): void => void spawnSync('umount', ['-l', p], { stdio: 'ignore' });

const doc = (s: string): string => `apiVersion: virtform.dev/v1\n${s}\n`;
const baseDocs = [
  `kind: StoragePool\nmetadata: {name: ${P}-okpool}\nspec: {path: ${OK}}`,
  `kind: Volume\nmetadata: {name: ${P}-okvol}\nspec: {pool: ${P}-okpool, capacity: 4MiB, format: raw}`,
  `kind: Network\nmetadata: {name: ${P}-net}\nspec: {mode: isolated, cidr: 10.237.0.0/24}`,
  `kind: VirtualMachine\nmetadata: {name: ${P}-vm1}\nspec: {vcpus: 1, memory: 64MiB, state: stopped, disks: [{volume: ${P}-okvol}], nics: [{network: ${P}-net}]}`,
  `kind: StoragePool\nmetadata: {name: ${P}-small}\nspec: {path: ${SMALL}}`,
  `kind: StoragePool\nmetadata: {name: ${P}-ro}\nspec: {path: ${RO}}`,
];
const failingDocs = [
  `kind: Volume\nmetadata: {name: ${P}-big}\nspec: {pool: ${P}-small, capacity: 8MiB, format: raw, source: ${SRC}}`,
  `kind: Volume\nmetadata: {name: ${P}-rovol}\nspec: {pool: ${P}-ro, capacity: 4MiB, format: qcow2}`,
  `kind: VirtualMachine\nmetadata: {name: ${P}-vm2}\nspec: {vcpus: 1, memory: 64MiB, state: stopped, disks: [{volume: ${P}-big}], nics: []}`,
];

describe('disk full and read-only pool paths', () => {
  beforeAll(async () => {
    await ensureLibvirtd();
    ensureBuilt();
    umount(SMALL);
    umount(RO);
    N.cleanup();
    work = N.tempDir();
    mkdirSync(SMALL, { recursive: true });
    mkdirSync(RO, { recursive: true });
    const a = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', SMALL], { encoding: 'utf8' });
    const b = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,ro', 'tmpfs', RO], { encoding: 'utf8' });
    mounted = a.status === 0 && b.status === 0;
    mountError = `${a.stderr ?? ''} ${b.stderr ?? ''}`.trim();
    if (!mounted) console.warn(`[faults] cannot mount tmpfs here (${mountError}); disk-full test skipped`);
    mkdirSync(join(SRC, '..'), { recursive: true });
    writeFileSync(SRC, randomBytes(6 * 1024 * 1024)); // incompressible, not sparse
  });

  afterAll(() => {
    umount(SMALL);
    umount(RO);
    N.cleanup();
    rmSync(join(SRC, '..'), { recursive: true, force: true });
  });

  it('fails those volumes cleanly, leaves nothing behind, completes the rest', async () => {
    if (!mounted) {
      console.warn(`[faults] SKIPPED (no tmpfs mount: ${mountError})`);
      return;
    }
    const dir = writeManifests(join(work, 'm'), { 'env.yaml': [...baseDocs, ...failingDocs].map(doc).join('---\n') });
    const db = join(work, 'state.db');
    const r = await runCli(['reconcile', dir, '--db', db, ...COMMON]);
    const text = r.stdout + r.stderr;
    console.log(`[faults] disk full / read-only: exit ${r.code}\n${text.split('\n').filter((l) => /^[✗!]|failed|error/i.test(l)).slice(0, 12).join('\n')}`);
    expect(r.code, text).toBe(1);
    // Each failure names the resource and says why.
    expect(text).toMatch(new RegExp(`Volume/${P}-big[\\s\\S]{0,400}(No space left|ENOSPC)`, 'i'));
    expect(text).toMatch(new RegExp(`Volume/${P}-rovol[^\\n]*(Read-only file system|EROFS|Permission denied)`, 'i'));
    expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+\)?\n/); // no stack trace

    // Nothing half-made: no file in either mount, no libvirt volume in those pools, no domain that needs one.
    expect(readdirSync(SMALL)).toEqual([]);
    expect(readdirSync(RO)).toEqual([]);
    const inv = inventory(N.prefix);
    expect(inv.volumes.filter((v) => v.startsWith(`${P}-small/`) || v.startsWith(`${P}-ro/`))).toEqual([]);
    expect(inv.domains).toEqual([`${P}-vm1`]);
    // The rest completed.
    expect(inv.pools).toEqual([`${P}-okpool`, `${P}-ro`, `${P}-small`]);
    expect(inv.volumes).toEqual([`${P}-okpool/${P}-okvol.img`]);
    expect(inv.networks).toEqual([`${P}-net`]);
    expect(orphans(N.prefix, await declaredFrom(dir))).toEqual([]);
    expect(openJournal(db)).toEqual([]);

    // Drop the impossible volumes: converges.
    const fixed = writeManifests(join(work, 'm'), { 'env.yaml': baseDocs.map(doc).join('---\n') });
    const again = await runCli(['reconcile', fixed, '--db', db, ...COMMON]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    const dry = await runCli(['reconcile', fixed, '--db', db, '--dry-run', '--detailed-exitcode', ...COMMON]);
    expect(dry.code, dry.stdout).toBe(0);
    expect(orphans(N.prefix, await declaredFrom(fixed))).toEqual([]);
  });
});

describe('disk full over TCP (a second libvirtd, qemu+tcp)', () => {
  const NT = suiteNames('faulttcp');
  const T = NT.base;
  const HOST = 'vfcidf';
  const POOL_DIR = `${TEST_POOL_ROOT}/${T}-small`; // inside the test host's mount namespace
  const IMAGE = randomBytes(24 * 1024 * 1024); // incompressible, not sparse: 3x the pool
  let host: TestHost | undefined;
  let server: Server;
  let base: string;
  let tcpWork: string;

  beforeAll(async () => {
    ensureBuilt();
    testHostsCleanup(HOST); // a host a killed run left behind
    host = testHostUp(HOST);
    host.execOk(['bash', '-c', `mkdir -p ${POOL_DIR} && mount -t tmpfs -o size=8m tmpfs ${POOL_DIR}`]);
    server = createServer((_req, res) => res.writeHead(200, { 'content-length': IMAGE.length }).end(IMAGE));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    tcpWork = NT.tempDir();
  }, 240_000);

  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    testHostDown(HOST);
    if (tcpWork) rmSync(tcpWork, { recursive: true, force: true });
  }, 120_000);

  it('fails within a bounded time with the daemon\'s ENOSPC, journal closed, nothing left; with space freed the rerun imports it', async () => {
    const h = host!;
    const sha = createHash('sha256').update(IMAGE).digest('hex');
    const dir = writeManifests(join(tcpWork, 'm'), {
      'env.yaml': [
        `kind: StoragePool\nmetadata: {name: ${T}-small}\nspec: {path: ${POOL_DIR}}`,
        `kind: Volume\nmetadata: {name: ${T}-big}\nspec: {pool: ${T}-small, capacity: 32MiB, format: raw, source: {url: "${base}/big.raw", sha256: "${sha}"}}`,
      ].map(doc).join('---\n'),
    });
    const db = join(tcpWork, 'state.db');
    // Plain tcp to another address needs --insecure (the test host is this machine's own namespace).
    const args = ['reconcile', dir, '--db', db, '--uri', h.uri, '--insecure', '--max-attempts', '1'];
    const t0 = Date.now();
    const r = await runCli(args, {}, 180_000);
    const ms = Date.now() - t0;
    const text = r.stdout + r.stderr;
    console.log(`[faults] disk full over TCP: exit ${r.code} after ${ms} ms\n${text.split('\n').filter((l) => /^[✗!]|failed|error/i.test(l)).slice(0, 6).join('\n')}`);
    expect(r.signal, text).toBeNull();
    expect(r.code, text).toBe(1);
    expect(ms, text).toBeLessThan(60_000);
    expect(text).toMatch(new RegExp(`Volume/${T}-big[^\\n]*upload volume[^\\n]*No space left on device`));
    expect(openJournal(db)).toEqual([]);
    // Nothing half-made: no libvirt volume, no file on the tmpfs.
    h.virsh('pool-refresh', `${T}-small`);
    expect(h.virsh('vol-list', `${T}-small`).trim()).toBe('');
    expect(h.execOk(['ls', '-A', POOL_DIR]).trim()).toBe('');

    // Space freed: the rerun imports it and converges.
    h.execOk(['mount', '-o', 'remount,size=64m', POOL_DIR]);
    const again = await runCli(args, {}, 180_000);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(h.virsh('vol-list', `${T}-small`)).toContain(`${T}-big.img`);
    const got = h.execOk(['sha256sum', `${POOL_DIR}/${T}-big.img`]).split(/\s+/)[0];
    const want = createHash('sha256').update(Buffer.concat([IMAGE, Buffer.alloc(8 * 1024 * 1024)])).digest('hex');
    expect(got).toBe(want); // the image, grown to the declared 32 MiB
    const dry = await runCli([...args, '--dry-run', '--detailed-exitcode']);
    expect(dry.code, dry.stdout).toBe(0);
  }, 300_000);
});
