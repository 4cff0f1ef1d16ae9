/**
 * The Debian cloud-init guest (scripts/build-debian-guest.sh): image build time (warm: the cached
 * build is found; `--cold`: a full build into a fresh cache directory, downloading from the
 * mirror again) and boot time to cloud-init's "finished" line per domain type, on qemu:///system.
 *
 *   npx tsx bench/guest.bench.ts [--out bench/results/guest.md] [--virt qemu,kvm] [--boots 1] [--cold]
 *
 * Each boot: a qcow2 overlay on a copy of the image, a NoCloud seed (src/cloudinit/seed.ts) on an
 * IDE CD-ROM, an isolated network with DHCP; the domain is started paused, its console attached
 * through virDomainOpenConsole, then resumed; times are wall clock from the resume. The guest's own
 * `Up N seconds` (cloud-init's finished line) is reported too: under TCG on a loaded host the
 * guest clock runs slow, so it is lower than the wall time. Load averages before and after are in
 * the report: on a shared 2-core machine they explain most of the spread.
 * Objects: vftest-guest-deb-bench-*, removed after.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildNoCloudSeed } from '../src/cloudinit/seed.js';
import { LibvirtClient } from '../src/libvirt/index.js';
import { Console, FINISHED, type GuestPaths, ROOT, URI, virsh, waitForGuest } from '../test/guest/support.js';
import { flags, machineBlock, table, writeReport } from './lib.js';

const f = flags();
const virts = (f.virt ?? 'qemu').split(',').map((s) => s.trim()) as Array<'qemu' | 'kvm'>;
const boots = Number(f.boots ?? 1);
const P = 'vftest-guest-deb-bench';
const DIR = `/var/lib/virtform-test/${P}`;
const NET = `${P}-net`;
const SUBNET = '192.168.252';
const MAC = '52:54:00:7f:fd:01';
const load = (): string => loadavg().map((x) => x.toFixed(1)).join(' / ');

function build(env: Record<string, string> = {}): { paths: GuestPaths; ms: number } {
  const t = performance.now();
  const out = execFileSync('bash', [join(ROOT, 'scripts/build-debian-guest.sh'), '--print-paths'], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return { paths: JSON.parse(out.trim().split('\n').pop()!) as GuestPaths, ms: performance.now() - t };
}

function cleanup(): void {
  execFileSync('bash', [join(ROOT, 'scripts/cleanup-test-objects.sh'), P], { stdio: 'inherit' });
  rmSync(DIR, { recursive: true, force: true });
}

async function bootOnce(c: LibvirtClient, g: GuestPaths, virt: 'qemu' | 'kvm', i: number): Promise<(string | number)[]> {
  const dom = `${P}-${virt}-${i}`;
  const content = randomBytes(8).toString('hex');
  const overlay = join(DIR, `${dom}.qcow2`);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', join(DIR, 'base.qcow2'), overlay, '4G']);
  const seed = join(DIR, `${dom}-seed.iso`);
  writeFileSync(
    seed,
    buildNoCloudSeed({
      vmName: dom,
      userData: `#cloud-config\nruncmd:\n  - [sh, -c, 'echo "vf-file: ${content}" > /dev/ttyS0']\n`,
    }).iso,
  );
  await c.domainDefineXml(`<domain type='${virt}'>
  <name>${dom}</name><memory unit='MiB'>512</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>${DIR}/vmlinuz</kernel><initrd>${DIR}/initrd.img</initrd><cmdline>${g.cmdline}</cmdline></os>
  <on_reboot>destroy</on_reboot>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${overlay}'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='${seed}'/><target dev='hdc' bus='ide'/><readonly/></disk>
    <interface type='network'><mac address='${MAC}'/><source network='${NET}'/><model type='virtio'/></interface>
    <serial type='pty'><target port='0'/></serial><console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='none'/>
  </devices>
</domain>`);
  const before = load();
  const con = await Console.boot(c, dom);
  let r;
  try {
    r = await waitForGuest(con, dom, { network: NET, mac: MAC, hostname: dom, fileContent: content, subnet: SUBNET });
  } finally {
    con.close();
    if (virsh('domstate', dom).includes('running')) virsh('destroy', dom);
    virsh('undefine', dom);
  }
  const fin = FINISHED.exec(con.text);
  const s = (x: number | undefined): string => (x === undefined ? 'not seen' : (x / 1000).toFixed(1));
  return [virt, i + 1, s(r.leaseMs), s(con.seenAt.get('file')), s(con.seenAt.get('finished')), fin ? fin[4]! : 'n/a', before, load()];
}

async function main(): Promise<void> {
  cleanup();
  const sections: string[] = [];
  const buildRows: (string | number)[][] = [];
  if (f.cold === 'true') {
    const cache = mkdtempSync(join(tmpdir(), 'vftest-guest-deb-cold-'));
    const l0 = load();
    const cold = build({ VIRTFORM_DEBIAN_GUEST_CACHE: cache });
    buildRows.push(['cold (empty cache, everything downloaded)', (cold.ms / 1000).toFixed(0), l0]);
    rmSync(cache, { recursive: true, force: true });
  }
  const l1 = load();
  const warm = build();
  buildRows.push(['warm (cached build found)', (warm.ms / 1000).toFixed(1), l1]);
  const g = warm.paths;
  sections.push(table(['image build', 'seconds', 'load avg 1/5/15 min before'], buildRows));

  mkdirSync(DIR, { recursive: true });
  copyFileSync(g.kernel, join(DIR, 'vmlinuz'));
  copyFileSync(g.initrd, join(DIR, 'initrd.img'));
  copyFileSync(g.image, join(DIR, 'base.qcow2'));
  const netXml = join(DIR, 'net.xml');
  writeFileSync(
    netXml,
    `<network><name>${NET}</name><bridge name='vftgdebb0' stp='off' delay='0'/><ip address='${SUBNET}.1' netmask='255.255.255.0'><dhcp><range start='${SUBNET}.100' end='${SUBNET}.199'/></dhcp></ip></network>`,
  );
  virsh('net-create', netXml);
  const c = await LibvirtClient.connect(URI);
  const rows: (string | number)[][] = [];
  try {
    for (const virt of virts) for (let i = 0; i < boots; i++) rows.push(await bootOnce(c, g, virt, i));
  } finally {
    await c.close();
    cleanup();
  }
  sections.push(
    table(['domain type', 'boot', 'resume → DHCP lease s', 'resume → runcmd line s', 'resume → cloud-init finished s', "guest's own uptime at finished s", 'load before', 'load after'], rows),
  );
  writeReport(
    f.out,
    `# Debian cloud-init guest benchmark

\`scripts/build-debian-guest.sh\` (Debian bookworm minbase + cloud-init ${g.packages['cloud-init']}, kernel ${g.kernelRelease}, image ${g.imageVirtualSize / 2 ** 30} GiB virtual) and boots of it on qemu:///system
(512 MiB, 1 vCPU, machine pc, direct kernel boot, NoCloud seed on IDE CD-ROM, virtio disk and NIC on an isolated network).
Wall times from the resume of a domain started paused with its console attached.

${machineBlock()}

${sections.join('\n\n')}

Notes:
- The image build runs debootstrap and apt from the Debian mirror: its cold time depends on the mirror and the host's
  load more than on anything in virtform. \`--cold\` builds into a fresh cache directory (every .deb downloaded again).
- KVM on this project's CI machine (nested virtualization) does not boot a Linux guest: with the default CPU model the
  guest never leaves SeaBIOS (0 bytes on the serial console after 90 s; also with \`nokaslr\`, and on q35 with a
  split irqchip); \`host-model\` and \`host-passthrough\` make QEMU abort (\`failed to set MSR 0x10a\`, the
  arch-capabilities MSR); \`host-model\` with arch-capabilities disabled starts but stays in SeaBIOS too. Hence the
  default \`--virt qemu\` (TCG); on a host with working KVM pass \`--virt qemu,kvm\`.
`,
  );
}

main().catch((e) => {
  console.error(e);
  cleanup();
  process.exit(1);
});
