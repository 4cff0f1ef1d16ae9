/**
 * Real cloud-init, end to end: a Debian bookworm guest with Debian's cloud-init package
 * (scripts/build-debian-guest.sh, cached under /var/cache/virtform/debian-guest) boots by direct
 * kernel boot (its own generic kernel and initrd, `root=/dev/vda`) on qemu:///system with a NoCloud
 * seed; cloud-init sets the hostname, writes a file, and a runcmd prints the file to the serial
 * console.
 *
 * Asserted from the outside only:
 * - the serial console, read through libvirt's console stream (virDomainOpenConsole on a domain
 *   started paused and resumed once attached, so nothing is missed): cloud-init's own last line
 *   (`Cloud-init v. ... finished at ... Datasource DataSourceNoCloud [seed=/dev/sr0]`), the file's
 *   content from the runcmd, the hostname cloud-init set, and no module failure;
 * - libvirt's DHCP leases (`virsh net-dhcp-leases`): the guest's MAC with the cloud-init hostname
 *   and an address of the isolated network's range.
 *
 * Two ways in:
 * 1. self-contained (needs nothing beyond main): the seed from src/cloudinit/seed.ts, the image and
 *    the seed written into a dir pool through HostPort.uploadVolume (libvirt's upload stream), a
 *    qcow2 overlay on the image, the domain defined with the libvirt client;
 * 2. manifest-driven: a loopback HTTP server serves the image; manifests (isolated Network with
 *    DHCP, StoragePool, a base Volume with `source: {url, sha256}`, a clone with `backingVolume`,
 *    a VirtualMachine with `spec.boot` and `spec.cloudInit.userData`) are reconciled with the CLI.
 *    Skipped, saying which, while the schema lacks those fields.
 *
 * Networks are isolated (no <forward>); everything is named `vftest-guest-deb-*` and removed
 * before and after, also on failure. Domain type: TCG unless VFTEST_GUEST_VIRT=kvm.
 */
import { randomBytes } from 'node:crypto';
import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNoCloudSeed } from '../../src/cloudinit/seed.js';
import { LibvirtClient } from '../../src/libvirt/index.js';
import { openHost } from '../../src/reconcile/adapters/libvirt-host.js';
import type { LibvirtHost } from '../../src/reconcile/adapters/libvirt-host.js';
import { ensureBuilt, runCli } from '../support/cli.js';
import { startDirPool, startIsolatedNetwork } from '../support/guest.js';
import { SchemaProbe } from './schema-probe.js';
import {
  assertSubnetFree,
  BOOT_TIMEOUT_MS,
  mac,
  subnet,
  cleanup,
  Console,
  debianGuest,
  FINISHED,
  type GuestPaths,
  type Lease,
  PREFIX,
  ROOT,
  tail,
  URI,
  VIRT,
  virsh,
  waitForGuest,
} from './support.js';
import { makeTempDir } from '../support/temp-dirs.js';

// Pools and files live here (cleanup-test-objects.sh sweeps vftest* in /var/lib/virtform-test);
// VFTEST_GUEST_ROOT moves them, e.g. where other test runs sharing the directory cannot sweep them.
const TEST_ROOT = process.env.VFTEST_GUEST_ROOT ?? '/var/lib/virtform-test';
const testDirs = ['pool', 'files', 'mpool', 'mfiles'].map((d) => `${TEST_ROOT}/${PREFIX}-${d}`);

let guest: GuestPaths;
let tmp: string;
let buildMs = 0;

beforeAll(async () => {
  cleanup();
  for (const d of testDirs) rmSync(d, { recursive: true, force: true });
  const t0 = Date.now();
  guest = debianGuest();
  buildMs = Date.now() - t0;
  for (const p of [guest.kernel, guest.initrd, guest.image]) {
    if (!existsSync(p)) throw new Error(`build-debian-guest.sh --print-paths named ${p}, which does not exist`);
  }
  tmp = makeTempDir(`${PREFIX}-`);
  mkdirSync(TEST_ROOT, { recursive: true });
}, 1_600_000);

afterAll(() => {
  cleanup();
  for (const d of testDirs) rmSync(d, { recursive: true, force: true });
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const sha256File = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

function userData(hostname: string, content: string): string {
  // runcmd runs in cloud-init's final stage, before cc_final_message prints the finished line.
  // `hostname` equals the meta-data local-hostname (the VM name): cloud-init sets that one before
  // the network comes up, so the DHCP request carries it; a different user-data hostname would be
  // applied after the lease was taken and reach libvirt's lease table only at the next renewal.
  // Hence the hostname on the console (`vf-hostname`) and in the lease are compared with this one.
  return `#cloud-config
hostname: ${hostname}
write_files:
  - path: /etc/vftest-guest
    permissions: '0644'
    content: |
      ${content}
runcmd:
  - [sh, -c, 'echo "vf-file: $(cat /etc/vftest-guest)" > /dev/ttyS0; echo "vf-hostname: $(hostname)" > /dev/ttyS0']
`;
}

/** The assertions both ways share; logs the timings. */
function checkGuest(label: string, con: Console, r: { lease?: Lease; leaseMs?: number; ms: number }, e: { hostname: string; mac: string; content: string; subnet: string }): void {
  const text = con.text;
  const fin = FINISHED.exec(text);
  const ctx = `console (last 6 KiB):\n${tail(text)}\nlease: ${JSON.stringify(r.lease)}`;
  // eslint-disable-next-line no-console
  console.log(
    `[debian-guest] ${label} (${VIRT}): guest build/cache ${buildMs} ms; resume -> lease ${r.leaseMs ?? '-'} ms, -> file line ${con.seenAt.get('file') ?? '-'} ms, -> finished ${con.seenAt.get('finished') ?? '-'} ms (guest uptime ${fin?.[4] ?? '?'} s), -> login prompt ${con.seenAt.get('login') ?? '-'} ms; kernel ${guest.kernelRelease}, cloud-init ${guest.packages['cloud-init']}`,
  );
  expect(fin, `cloud-init's finished line: ${ctx}`).not.toBeNull();
  expect(fin![2]).toBe('DataSourceNoCloud');
  expect(fin![3]).toMatch(/^\/dev\/sr\d$/);
  expect(text, ctx).toContain(`vf-file: ${e.content}`);
  expect(text, ctx).toContain(`vf-hostname: ${e.hostname}`);
  // Every cloud-init module ran without failing.
  expect(text, ctx).not.toMatch(/Running module \S+ \(.*\) failed/);
  expect(r.lease, `no DHCP lease for ${e.mac}: ${ctx}`).toBeDefined();
  expect(r.lease!.hostname).toBe(e.hostname);
  expect(r.lease!.prefix).toBe(24);
  const [a, b, c, d] = r.lease!.ip.split('.').map(Number);
  expect(`${a}.${b}.${c}`).toBe(e.subnet);
  expect(d).toBeGreaterThanOrEqual(100);
  expect(d).toBeLessThanOrEqual(199);
}

describe.sequential('Debian guest + cloud-init, self-contained: seed.ts seed, uploadVolume, libvirt client', () => {
  const NET = `${PREFIX}-net`;
  const SUBNET = subnet(0);
  const POOL = `${PREFIX}-pool`;
  const POOL_DIR = `${TEST_ROOT}/${POOL}`;
  const FILES = `${TEST_ROOT}/${PREFIX}-files`;
  const DOM = `${PREFIX}-vm`;
  const MAC = mac(1);
  const content = `vftest-${randomBytes(12).toString('hex')}`;
  let con: Console | undefined;
  // Its own connection, opened when this part starts (an idle one held across the other part's
  // minutes-long reconcile was once declared dead by the keepalive on a loaded host).
  let host: LibvirtHost;

  beforeAll(async () => {
    assertSubnetFree(SUBNET);
    host = await openHost(URI);
    startIsolatedNetwork(NET, 'vftgdeb0', SUBNET, tmp);
    expect(virsh('net-dumpxml', NET)).not.toContain('<forward');
    startDirPool(POOL, POOL_DIR, tmp);

    // The image, written into a qcow2 volume through libvirt's (sparse) upload stream.
    const baseXml = join(tmp, 'base.xml');
    writeFileSync(
      baseXml,
      `<volume><name>base.qcow2</name><capacity unit='bytes'>${guest.imageVirtualSize}</capacity><allocation unit='bytes'>0</allocation><target><format type='qcow2'/></target></volume>\n`,
    );
    virsh('vol-create', POOL, baseXml);
    const t0 = Date.now();
    // Hundreds of MiB through the stream: it waits for 'drain' thousands of times, and must not
    // leave a listener behind at each (Node warns past 10 on one emitter).
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      await host.uploadVolume(POOL, 'base.qcow2', createReadStream(guest.image, { highWaterMark: 1 << 20 }));
    } finally {
      process.off('warning', onWarning);
    }
    const uploadMs = Date.now() - t0;
    expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
    const basePath = virsh('vol-path', '--pool', POOL, 'base.qcow2').trim();
    expect(sha256File(basePath)).toBe(guest.imageSha256);
    // eslint-disable-next-line no-console
    console.log(`[debian-guest] uploadVolume of ${statSync(guest.image).size} bytes: ${uploadMs} ms`);

    // The VM's disk: a copy-on-write overlay on it, larger (cloud-init's resizefs grows the ext4).
    const rootXml = join(tmp, 'root.xml');
    writeFileSync(
      rootXml,
      `<volume><name>root.qcow2</name><capacity unit='GiB'>4</capacity><target><format type='qcow2'/></target><backingStore><path>${basePath}</path><format type='qcow2'/></backingStore></volume>\n`,
    );
    virsh('vol-create', POOL, rootXml);
    const rootPath = virsh('vol-path', '--pool', POOL, 'root.qcow2').trim();

    const seed = buildNoCloudSeed({ vmName: DOM, userData: userData(DOM, content) });
    virsh('vol-create-as', POOL, 'seed.iso', `${seed.iso.length}b`, '--format', 'raw');
    await host.uploadVolume(POOL, 'seed.iso', (async function* () { yield seed.iso; })());
    const seedPath = virsh('vol-path', '--pool', POOL, 'seed.iso').trim();
    expect(sha256File(seedPath)).toBe(seed.sha256);

    // Copies of the kernel and initrd: libvirt relabels what a domain uses, not the shared cache.
    mkdirSync(FILES, { recursive: true });
    const kernel = join(FILES, 'vmlinuz');
    const initrd = join(FILES, 'initrd.img');
    copyFileSync(guest.kernel, kernel);
    copyFileSync(guest.initrd, initrd);

    await host.client.domainDefineXml(`<domain type='${VIRT}'>
  <name>${DOM}</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${kernel}</kernel>
    <initrd>${initrd}</initrd>
    <cmdline>${guest.cmdline}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${rootPath}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='${seedPath}'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='${MAC}'/>
      <source network='${NET}'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'>
      <log file='${FILES}/console.log' append='off'/>
      <target port='0'/>
    </serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='none'/>
  </devices>
</domain>`);
  }, 300_000);

  afterAll(async () => {
    con?.close();
    await host?.close().catch(() => undefined);
  });

  it(
    `boots (${VIRT}); cloud-init reads the seed, sets the hostname, writes the file, runs runcmd; the lease carries the hostname`,
    async () => {
      con = await Console.boot(host.client, DOM);
      let r;
      try {
        r = await waitForGuest(con, DOM, { network: NET, mac: MAC, hostname: DOM, fileContent: content, subnet: SUBNET });
      } finally {
        // Stop the guest as soon as it has been seen: TCG guests cost CPU on a shared host.
        if (virsh('domstate', DOM).includes('running')) virsh('destroy', DOM);
      }
      checkGuest('self-contained', con, r, { hostname: DOM, mac: MAC, content, subnet: SUBNET });
    },
    BOOT_TIMEOUT_MS + 60_000,
  );
});

// --- manifest-driven --------------------------------------------------------------------------

const probe = new SchemaProbe(join(ROOT, 'schemas'));
const MISSING = probe.missing([
  ['volume.schema.json', ['spec', 'source', 'url']],
  ['volume.schema.json', ['spec', 'source', 'sha256']],
  ['virtualmachine.schema.json', ['spec', 'boot', 'kernel']],
  ['virtualmachine.schema.json', ['spec', 'boot', 'initrd']],
  ['virtualmachine.schema.json', ['spec', 'boot', 'cmdline']],
  ['virtualmachine.schema.json', ['spec', 'cloudInit', 'userData']],
]);
const manifestIt = MISSING.length === 0 ? it : it.skip;
if (MISSING.length > 0) {
  // eslint-disable-next-line no-console
  console.warn(
    `[debian-guest] manifest-driven test skipped: the schema lacks ${MISSING.join(', ')} (Volume spec.source.url/sha256, VirtualMachine spec.boot and spec.cloudInit come with the url and cloudinit work)`,
  );
}

describe.sequential('Debian guest + cloud-init, manifest-driven: URL volume, clone, spec.boot, spec.cloudInit, reconciled by the CLI', () => {
  const NET = `${PREFIX}-mnet`;
  const SUBNET = subnet(1);
  const POOL = `${PREFIX}-mpool`;
  const POOL_DIR = `${TEST_ROOT}/${POOL}`;
  const FILES = `${TEST_ROOT}/${PREFIX}-mfiles`;
  const VM = `${PREFIX}-mvm`;
  const MAC = mac(2);
  const content = `vftest-${randomBytes(12).toString('hex')}`;
  let server: Server | undefined;
  let requests: string[] = [];
  let manifests: string;
  let db: string;
  let con: Console | undefined;
  let imageBytes = 0;

  function writeManifests(port: number, state: 'running' | 'stopped'): void {
    const indent = (s: string, n: number) => s.replace(/\n(?=.)/g, `\n${' '.repeat(n)}`);
    writeFileSync(
      join(manifests, 'guest.yaml'),
      `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${POOL}}
spec: {path: ${POOL_DIR}}
---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${NET}}
spec:
  mode: isolated
  cidr: ${SUBNET}.0/24
  dhcp: {start: ${SUBNET}.100, end: ${SUBNET}.199}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${PREFIX}-base}
spec:
  pool: ${POOL}
  capacity: ${guest.imageVirtualSize}
  format: qcow2
  source:
    url: http://127.0.0.1:${port}/debian-guest.qcow2
    sha256: ${guest.imageSha256}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${PREFIX}-mroot}
spec:
  pool: ${POOL}
  capacity: 4GiB
  backingVolume: ${PREFIX}-base
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${VM}}
spec:
  vcpus: 1
  memory: 512MiB
  state: ${state}
  boot:
    kernel: ${FILES}/vmlinuz
    initrd: ${FILES}/initrd.img
    cmdline: ${guest.cmdline}
  cloudInit:
    userData: |
      ${indent(userData(VM, content), 6)}
  disks:
    - {volume: ${PREFIX}-mroot}
  nics:
    - {network: ${NET}, mac: '${MAC}'}
`,
    );
  }

  beforeAll(async () => {
    if (MISSING.length > 0) return;
    assertSubnetFree(SUBNET);
    ensureBuilt();
    imageBytes = statSync(guest.image).size;
    manifests = mkdtempSync(join(tmp, 'manifests-'));
    db = join(tmp, 'state.db');
    mkdirSync(FILES, { recursive: true });
    copyFileSync(guest.kernel, join(FILES, 'vmlinuz'));
    copyFileSync(guest.initrd, join(FILES, 'initrd.img'));
    // Loopback only: the image is served from this process.
    server = createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      if (req.url !== '/debian-guest.qcow2') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(imageBytes) });
      if (req.method === 'HEAD') res.end();
      else createReadStream(guest.image).pipe(res);
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  }, 300_000);

  afterAll(async () => {
    con?.close();
    if (server) await new Promise((r) => server!.close(r));
    if (manifests && db) {
      // virtform tears down what it made (then cleanup() sweeps whatever is left).
      const empty = mkdtempSync(join(tmp, 'empty-'));
      await runCli(['reconcile', empty, '--uri', URI, '--db', db, '--allow-empty', '--allow-data-loss'], {}, 300_000).catch(() => undefined);
    }
  }, 400_000);

  manifestIt(
    `reconcile creates network, pool, URL volume, clone and VM; the guest (${VIRT}) boots with cloud-init from spec.cloudInit`,
    async () => {
      const port = (server!.address() as AddressInfo).port;
      // First with state: stopped, so the test can start the domain paused and attach to its
      // console before the first instruction; then the manifests say running, and that converges.
      writeManifests(port, 'stopped');
      const args = ['--uri', URI, '--db', db, '--domain-type', VIRT];
      const t0 = Date.now();
      const first = await runCli(['reconcile', manifests, ...args], {}, 900_000);
      const reconcileMs = Date.now() - t0;
      expect(first.code, `${first.stdout}\n${first.stderr}`).toBe(0);
      expect(requests.filter((r) => r.startsWith('GET')).length).toBeGreaterThanOrEqual(1);
      expect(virsh('net-dumpxml', NET)).not.toContain('<forward');
      const domXml = virsh('dumpxml', VM);
      expect(domXml).toContain(`<kernel>${FILES}/vmlinuz</kernel>`);
      expect(domXml).toContain(`<cmdline>${guest.cmdline}</cmdline>`);
      const basePath = virsh('vol-path', '--pool', POOL, `${PREFIX}-base.qcow2`).trim();
      expect(sha256File(basePath)).toBe(guest.imageSha256);

      const c = await LibvirtClient.connect(URI);
      let r;
      try {
        con = await Console.boot(c, VM);
        r = await waitForGuest(con, VM, { network: NET, mac: MAC, hostname: VM, fileContent: content, subnet: SUBNET });
        writeManifests(port, 'running');
        const plan = await runCli(['reconcile', manifests, ...args, '--dry-run', '--detailed-exitcode'], {}, 300_000);
        expect(plan.code, `the running guest converges with the manifests:\n${plan.stdout}\n${plan.stderr}`).toBe(0);
      } finally {
        con?.close();
        await c.close().catch(() => undefined);
        if (virsh('domstate', VM).includes('running')) virsh('destroy', VM);
      }
      // eslint-disable-next-line no-console
      console.log(`[debian-guest] manifest reconcile (download ${imageBytes} bytes, import, clone, seed, define): ${reconcileMs} ms`);
      checkGuest('manifest-driven', con, r, { hostname: VM, mac: MAC, content, subnet: SUBNET });
    },
    BOOT_TIMEOUT_MS + 1_000_000,
  );
});
