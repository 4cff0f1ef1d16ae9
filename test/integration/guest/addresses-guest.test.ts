/**
 * Addresses of a guest that really asks for one (issue #13), driven by manifests on qemu:///system:
 * the tiny guest (scripts/build-tiny-guest.sh) booted by spec.boot on an isolated DHCP network.
 *
 *  - `reconcile --wait --json` returns once the guest has its lease, with the address libvirt's
 *    `virsh net-dhcp-leases` shows for its MAC (start-to-address time printed);
 *  - `status --json` shows that address (source lease) and `addressesReady: true`;
 *  - with a VM added that boots nothing, `reconcile --wait --wait-timeout 5` exits 1 naming only
 *    that VM, and still prints the guest's address.
 *
 * No seed is attached: the guest's /init looks for one for ~10 s, then runs udhcpc. Kernel and
 * initrd are copies in a test directory (libvirt changes the owner of the files a domain boots
 * from). Everything is named vftest-addrg-*; the network (its own 10.200.x.0/24) has no <forward>.
 * Domain type: TCG unless VFTEST_GUEST_VIRT=kvm.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { writeManifests } from '../../support/manifests.js';
import { runCli } from '../../support/cli.js';
import { useSuite } from '../../support/suite.js';
import { dhcpLeases, virsh } from '../../support/virsh.js';
import { assertSubnetFree, GUEST_VIRT as VIRT, TINY_CMDLINE, tinyGuestFiles, type TinyGuestFiles } from '../../support/guest.js';

const N = useSuite('addrg', {
  manifestDir: 'm', 
  setup: () => {
    files = tinyGuestFiles(P);
    assertSubnetFree(SUBNET);
  },
  setupTimeoutMs: 300_000,
});
const P = N.base;
const NET = `${P}-net`;
const VM = `${P}-tiny`;
const BLANK = `${P}-blank`;
const MAC = N.mac(1);
const BLANK_MAC = N.mac(2);
const SUBNET = N.subnet();
let files: TinyGuestFiles | undefined;

function manifests(o: { blank?: boolean } = {}): Record<string, string> {
  return {
    'net.yaml': `apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${NET}}
spec: {mode: isolated, cidr: ${SUBNET}.0/24, dhcp: {start: ${SUBNET}.100, end: ${SUBNET}.199}, autostart: false}
`,
    'vm.yaml': `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${VM}}
spec:
  vcpus: 1
  memory: 128MiB
  state: running
  boot:
    kernel: ${files!.kernel}
    initrd: ${files!.initrd}
    cmdline: "${TINY_CMDLINE}"
  nics: [{network: ${NET}, mac: "${MAC}"}]
${o.blank ? `---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${BLANK}}
spec:
  vcpus: 1
  memory: 32MiB
  state: running
  disks: []
  nics: [{network: ${NET}, mac: "${BLANK_MAC}"}]
` : ''}`,
  };
}

const leases = (): { mac: string; ip: string; prefix: number }[] => dhcpLeases(NET);

afterAll(() => {
  files?.remove();
});

interface NicJson { mac: string; network: string; dhcp: boolean; addresses: { ip: string; prefix: number; family: string; source: string }[] }

describe.sequential(`reconcile --wait with the tiny guest (${VIRT})`, () => {
  it('reconcile --wait returns with the address of the guest\'s DHCP lease, the one virsh net-dhcp-leases shows; status --json shows it', async () => {
    writeManifests(N.mdir, manifests());
    const t0 = Date.now();
    const r = await runCli(['reconcile', N.mdir, '--db', N.db, '--domain-type', VIRT, '--wait', '--wait-timeout', '240', '--json'], {}, 300_000);
    const ms = Date.now() - t0;
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const doc = JSON.parse(r.stdout) as { outcome: string; wait: { outcome: string; elapsedMs: number; polls: number; addresses: Record<string, NicJson[]> } };
    expect(doc.outcome).toBe('succeeded');
    expect(doc.wait.outcome).toBe('ready');
    const nic = doc.wait.addresses[VM]![0]!;
    expect(nic).toMatchObject({ mac: MAC, network: NET, dhcp: true });
    const lease = leases().find((l) => l.mac === MAC);
    expect(lease, virsh('net-dhcp-leases', NET)).toBeDefined();
    expect(nic.addresses).toEqual([{ ip: lease!.ip, prefix: 24, family: 'ipv4', source: 'lease', hostname: null }]);
    // eslint-disable-next-line no-console
    console.log(`[addresses-guest] ${VIRT}: reconcile --wait ${ms} ms in all; VM started -> address ${doc.wait.elapsedMs} ms (${doc.wait.polls} polls); ${lease!.ip}`);

    const st = await runCli(['status', N.mdir, '--db', N.db, '--json']);
    expect(st.code, st.stderr).toBe(0);
    const row = (JSON.parse(st.stdout) as { resources: { name: string; addresses: NicJson[]; addressesReady: boolean }[] }).resources.find((x) => x.name === VM)!;
    expect(row.addressesReady).toBe(true);
    expect(row.addresses[0]!.addresses[0]).toMatchObject({ ip: lease!.ip, source: 'lease' });
    const table = await runCli(['status', N.mdir, '--db', N.db]);
    expect(table.stdout).toMatch(new RegExp(`VirtualMachine/${VM} .*${lease!.ip.replace(/\./g, '\\.')}/24 \\(lease\\)`));
  }, 320_000);

  it('with a VM that boots nothing added, --wait-timeout 5 exits 1 naming only that VM, and prints the guest\'s address', async () => {
    writeManifests(N.mdir, manifests({ blank: true }));
    const r = await runCli(['reconcile', N.mdir, '--db', N.db, '--domain-type', VIRT, '--wait', '--wait-timeout', '5'], {}, 120_000);
    expect(r.code, r.stderr + r.stdout).toBe(1);
    expect(r.stderr).toContain(`timed out after 5s waiting for an address: ${BLANK} (${BLANK_MAC} on ${NET})`);
    expect(r.stderr).not.toContain(`${VM} (`);
    const lease = leases().find((l) => l.mac === MAC)!;
    expect(r.stdout).toMatch(new RegExp(`VirtualMachine/${VM}\\s+${MAC}\\s+${NET}\\s+${lease.ip.replace(/\./g, '\\.')}/24 \\(lease\\)`));
    expect(r.stdout).toMatch(new RegExp(`VirtualMachine/${BLANK}\\s+${BLANK_MAC}\\s+${NET}\\s+none yet`));
  }, 150_000);
});
