/**
 * The policy is checked where the bytes come from (issue 19, findings 7 and 8), on the real
 * libvirtd through the CLI: a redirect to a host `urlHosts` does not allow is refused before it is
 * requested, and the disk limits apply to an image's virtual size when no capacity is declared
 * (before the upload when the image is not cached yet, at plan time with file:line:col once it is).
 * Two loopback servers: 127.0.0.1 (allowed) and 127.0.0.2 (not allowed); nothing else is contacted.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { writeManifests } from '../../support/manifests.js';
import { runCli, virsh } from '../../support/real-host.js';
import { useSuite } from '../../support/suite.js';
import { cacheFiles, suiteVolumes } from '../../support/url-import.js';

const N = useSuite('urlpolicy', {
  setup: async () => {
    RAW = Buffer.concat([Buffer.from('virtform policy image\n'), Buffer.alloc(1024 ** 2 - 22, 0x41)]);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(N.work, 'big.qcow2'), '64M']);
    BIG = readFileSync(join(N.work, 'big.qcow2'));
    allowed = createServer(handler('A'));
    other = createServer(handler('B'));
    baseA = await listen(allowed, '127.0.0.1');
    baseB = await listen(other, '127.0.0.2');
  },
});
const P = N.base;
const POOL_DIR = `${process.env.VIRTFORM_TEST_POOL_ROOT ?? '/var/lib/virtform-test'}/${P}-pool`;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let allowed: Server;
let other: Server;
let baseA: string;
let baseB: string;
let hits: Record<string, number> = {};
let RAW: Buffer;
let BIG: Buffer; // qcow2, 64 MiB virtual size, ~200 KB of file

function handler(tag: string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0]!;
    hits[`${tag}${path}`] = (hits[`${tag}${path}`] ?? 0) + 1;
    if (path === '/elsewhere') { res.writeHead(302, { location: `${baseB}/raw.img` }).end(); return; }
    if (path === '/file') { res.writeHead(302, { location: 'file:///etc/hostname' }).end(); return; }
    const body = path === '/raw.img' ? RAW : path === '/big.qcow2' ? BIG : undefined;
    if (!body) { res.writeHead(404, 'Not Found').end(); return; }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  };
}

const listen = (s: Server, host: string): Promise<string> =>
  new Promise((r) => s.listen(0, host, () => r(`http://${host}:${(s.address() as AddressInfo).port}`)));

afterAll(async () => {
  for (const s of [allowed, other]) {
    s?.closeAllConnections();
    await new Promise<void>((r) => (s ? s.close(() => r()) : r()));
  }
});

const POOL = `apiVersion: virtform.dev/v1\nkind: StoragePool\nmetadata: {name: ${P}-pool}\nspec: {path: ${POOL_DIR}}\n`;
const vol = (name: string, spec: string): string =>
  `---\napiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: ${P}-${name}}\nspec: {pool: ${P}-pool, ${spec}}\n`;

let n = 0;
/** A fresh case: its own manifests, policy and state DB (so its own image cache); the host swept of this suite's objects. */
function folder(docs: string, policy: string): { dir: string; db: string; policy: string } {
  N.cleanup();
  n += 1;
  const dir = writeManifests(join(N.work, `m${n}`), { 'm.yaml': POOL + docs });
  mkdirSync(join(N.work, `state${n}`), { recursive: true });
  const pf = join(N.work, `policy${n}.yaml`);
  writeFileSync(pf, `apiVersion: virtform.dev/v1\nkind: Policy\n${policy}`);
  return { dir, db: join(N.work, `state${n}`, 'state.db'), policy: pf };
}
const run = (m: { dir: string; db: string; policy: string }, extra: string[] = []) =>
  runCli(['reconcile', m.dir, '--db', m.db, '--policy', m.policy, '--max-attempts', '1', ...extra]);
const volumes = (): string[] => suiteVolumes(P);

describe('what validates can apply: a clone smaller than a URL base whose size validation could not know', () => {
  it('is refused before the clone is created (the base is imported), then when planning (the base is cached); a clone of its size is made', async () => {
    const base = vol('ubase', `format: qcow2, source: {url: "${baseA}/big.qcow2", sha256: "${sha(BIG)}"}`);
    const m = folder(base + vol('small', `capacity: 16MiB, backingVolume: ${P}-ubase`), '');
    const r = await run(m);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toContain(`capacity 16MiB is smaller than backing volume ${P}-ubase (64MiB): a clone is at least its backing volume's size`);
    expect(volumes()).toEqual([`${P}-ubase.qcow2`]);
    // The base is in the image cache now: the plan knows its size, a manifest error with file:line:col.
    const plan = await run(m, ['--dry-run']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(2);
    expect(plan.stderr).toMatch(new RegExp(`m\\.yaml:\\d+:\\d+: Volume/${P}-small: spec\\.capacity: capacity 16MiB is smaller than backing volume "${P}-ubase" \\(64MiB\\)`));
    const ok = folder(base + vol('small', `capacity: 64MiB, backingVolume: ${P}-ubase`), '');
    expect((await run(ok)).code).toBe(0);
  }, 60_000);
});

describe('policy checked where the bytes come from', () => {
  it('a redirect to a host urlHosts does not allow is refused before it is requested: no volume, no cache file, both URLs named, credentials redacted', async () => {
    hits = {};
    const url = baseA.replace('://', '://alice:s3cret-pw@');
    const m = folder(vol('redir', `format: raw, source: {url: "${url}/elsewhere", sha256: "${sha(RAW)}"}`), 'urlHosts: [127.0.0.1]\n');
    const r = await run(m);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const out = r.stdout + r.stderr;
    expect(out).toContain(`${baseA.replace('://', '://***@')}/elsewhere redirected to ${baseB}/raw.img: refused: host "127.0.0.2" is not allowed: urlHosts allows 127.0.0.1`);
    expect(out).not.toContain('s3cret-pw');
    expect(hits).toEqual({ 'A/elsewhere': 1 }); // 127.0.0.2 never asked
    expect(volumes()).toEqual([]);
    expect(cacheFiles(m.db)).toEqual([]);

    // A redirect to a non-http scheme is refused too (file:// would read a host file).
    hits = {};
    const f = folder(vol('file', `format: raw, source: {url: "${baseA}/file", sha256: "${sha(RAW)}"}`), 'urlHosts: [127.0.0.1]\n');
    const rf = await run(f);
    expect(rf.code).toBe(1);
    expect(rf.stdout + rf.stderr).toContain(`${baseA}/file redirected to file:///etc/hostname: refused: only http and https are supported, not file`);
    expect(volumes()).toEqual([]);
  }, 60_000);

  it('limits.vm.disk applies to the virtual size of a URL image declared without capacity: before the upload, then at plan time once cached', async () => {
    hits = {};
    const docs = vol('big', `format: qcow2, source: {url: "${baseA}/big.qcow2", sha256: "${sha(BIG)}"}`)
      + `---\napiVersion: virtform.dev/v1\nkind: VirtualMachine\nmetadata: {name: ${P}-vm}\n`
      + `spec:\n  vcpus: 1\n  memory: 64MiB\n  state: stopped\n  disks:\n    - volume: ${P}-big\n`;
    const m = folder(docs, 'urlHosts: [127.0.0.1]\nlimits:\n  vm: {disk: 32MiB}\n');
    const r = await run(m);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toContain(`has a virtual size of 64MiB (${64 * 1024 ** 2} bytes): more than the 32MiB the policy leaves it: limits.vm.disk 32MiB of VirtualMachine/${P}-vm`);
    expect(volumes()).toEqual([]); // no volume: refused before the upload step created it
    expect(virsh('list', '--all', '--name')).not.toContain(`${P}-vm`); // its VM depends on it
    expect(cacheFiles(m.db)).toEqual([sha(BIG)]);

    // The image is cached now: its size is known when planning, a manifest error with file:line:col.
    const again = await run(m, ['--dry-run']);
    expect(again.code, again.stdout + again.stderr).toBe(2);
    expect(again.stderr).toMatch(new RegExp(`m\\.yaml:\\d+:\\d+: VirtualMachine/${P}-vm: spec\\.disks: attached volumes total 64MiB, more than the per-VM limit limits\\.vm\\.disk 32MiB`));
    expect(hits['A/big.qcow2']).toBe(1);
  }, 60_000);

  it('limits.host.disk: the same, against the total of every volume', async () => {
    const m = folder(vol('small', 'format: raw, capacity: 16MiB') + vol('big2', `format: qcow2, source: {url: "${baseA}/big.qcow2", sha256: "${sha(BIG)}"}`),
      'limits:\n  host: {disk: 48MiB}\n');
    const r = await run(m);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toContain('more than the 32MiB the policy leaves it: limits.host.disk 48MiB (other volumes: 16MiB)');
    expect(volumes()).toEqual([`${P}-small.img`]);
  }, 60_000);
});
