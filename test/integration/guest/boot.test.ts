/**
 * spec.boot against the real libvirtd: the tiny guest (scripts/build-tiny-guest.sh) booted by a
 * virtform manifest with spec.boot.kernel/initrd/cmdline (direct kernel boot), its console read
 * from the moment it runs (started paused by the test through the client, console stream
 * attached, then resumed); a command line changed outside virtform seen as drift and corrected;
 * a UEFI VM (OVMF by libvirt's firmware autoselection) that runs and whose NVRAM file is gone
 * once virtform deleted it.
 *
 * Copies of the kernel and initrd live in a test directory: libvirt changes the owner of the files
 * a domain boots from while it runs. Everything is named `vftest-boot-*`. TCG.
 */
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDomainXml } from '../../../src/libvirt/xml/index.js';
import { writeManifests } from '../../support/manifests.js';
import { runCli } from '../../support/cli.js';
import { useSuite } from '../../support/suite.js';
import { virsh, virshOk } from '../../support/virsh.js';
import { bootWithConsole, TINY_CMDLINE, tinyGuestFiles, type TinyGuestFiles } from '../../support/guest.js';

const N = useSuite('boot', {
  setup: () => {
    files = tinyGuestFiles(P);
  },
  setupTimeoutMs: 300_000,
});
const P = N.base;
const VM = `${P}-vm`;
const UEFI = `${P}-uefi`;
const CMDLINE = TINY_CMDLINE;
const NVRAM = `/var/lib/libvirt/qemu/nvram/${UEFI}_VARS.fd`;
let files: TinyGuestFiles;

function manifests(o: { state?: string; cmdline?: string; uefi?: boolean } = {}): Record<string, string> {
  const vm = (name: string, extra: string) => `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${name}}
spec:
  vcpus: 1
  memory: 128MiB
  state: ${o.state ?? 'stopped'}
  boot:${extra}
    kernel: ${files.kernel}
    initrd: ${files.initrd}
    cmdline: "${o.cmdline ?? CMDLINE}"
`;
  return {
    'vm.yaml': vm(VM, ''),
    ...(o.uefi ? { 'uefi.yaml': vm(UEFI, '\n    firmware: uefi').replace(/state: \w+/, 'state: running') } : {}),
  };
}

const cli = (args: string[]) => runCli([...args, '--db', N.db]);
async function reconcileOk(o: Parameters<typeof manifests>[0] = {}): Promise<string> {
  writeManifests(N.mdir, manifests(o));
  const r = await cli(['reconcile', N.mdir, '--domain-type', 'qemu', '--shutdown-timeout', '0']);
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

/** Start a defined domain paused, attach its console, resume it; resolves with the text once `until` matches. */
async function bootWatched(name: string, until: RegExp, timeoutMs = 120_000): Promise<string> {
  const con = await bootWithConsole(name);
  try {
    return await con.waitFor(until, timeoutMs);
  } finally {
    await con.close();
  }
}

describe.sequential('spec.boot on qemu:///system (direct kernel boot of the tiny guest)', () => {
  it('defines the domain with <kernel>, <initrd>, <cmdline>; the kernel boots the initramfs', async () => {
    await reconcileOk();
    const def = parseDomainXml(virsh('dumpxml', '--inactive', VM));
    expect(def.boot).toEqual({ kernel: files.kernel, initrd: files.initrd, cmdline: CMDLINE });
    const t0 = Date.now();
    // No seed attached: the tiny guest's /init says so after it booted.
    const text = await bootWatched(VM, /vf-guest: error no NoCloud seed/);
    // eslint-disable-next-line no-console
    console.log(`[boot] start paused -> resume -> "no seed" line: ${Date.now() - t0} ms`);
    expect(text).toMatch(/^vf-guest: boot 6\./m);
    // Declared running now: nothing to do but record it.
    await reconcileOk({ state: 'running' });
    expect(virsh('domstate', VM)).toContain('running');
  }, 200_000);

  it('a command line changed outside virtform is drift [restart]; reconcile corrects the definition', async () => {
    const xml = virsh('dumpxml', '--inactive', VM);
    const file = join(N.work, 'edited.xml');
    writeManifests(join(N.work, 'edit'), { 'edited.xml': xml.replace(`<cmdline>${CMDLINE}</cmdline>`, '<cmdline>console=ttyS0 init=/bin/sh</cmdline>') });
    copyFileSync(join(N.work, 'edit', 'edited.xml'), file);
    virsh('define', file);
    expect(parseDomainXml(virsh('dumpxml', '--inactive', VM)).boot?.cmdline).toBe('console=ttyS0 init=/bin/sh');
    writeManifests(N.mdir, manifests({ state: 'running' }));
    const dry = await cli(['reconcile', N.mdir, '--dry-run', '--detailed-exitcode']);
    expect(dry.code, dry.stdout + dry.stderr).toBe(3);
    expect(dry.stdout).toContain(`~ spec.boot.cmdline: "console=ttyS0 init=/bin/sh" → "${CMDLINE}" (drift) [restart]`);
    await reconcileOk({ state: 'running' });
    expect(parseDomainXml(virsh('dumpxml', '--inactive', VM)).boot?.cmdline).toBe(CMDLINE);
    const again = await cli(['reconcile', N.mdir, '--dry-run', '--detailed-exitcode']);
    expect(again.code, again.stdout).toBe(0);
  }, 120_000);

  it('a manifest edit of the command line is applied to the definition and marked restart required', async () => {
    const out = await reconcileOk({ state: 'running', cmdline: `${CMDLINE} quiet` });
    expect(out).toContain(`~ spec.boot.cmdline: "${CMDLINE}" → "${CMDLINE} quiet" [restart]`);
    expect(parseDomainXml(virsh('dumpxml', '--inactive', VM)).boot?.cmdline).toBe(`${CMDLINE} quiet`);
    expect(parseDomainXml(virsh('dumpxml', VM)).boot?.cmdline).toBe(CMDLINE);
    const st = await cli(['status', '--uri', 'qemu:///system']);
    expect(st.stdout).toMatch(/restart required/);
  }, 120_000);

  it('firmware: uefi runs on OVMF (autoselected); deleting the VM removes its NVRAM file', async () => {
    await reconcileOk({ state: 'running', cmdline: `${CMDLINE} quiet`, uefi: true });
    expect(virsh('domstate', UEFI)).toContain('running');
    const inactive = virsh('dumpxml', '--inactive', UEFI);
    expect(inactive).toContain(`<os firmware='efi'>`);
    const live = virsh('dumpxml', UEFI);
    expect(live).toMatch(/<loader readonly='yes' type='pflash'>\/usr\/share\/OVMF\/OVMF_CODE[^<]*\.fd<\/loader>/);
    expect(live).toContain(`${NVRAM}</nvram>`);
    expect(parseDomainXml(live).boot?.firmware).toBe('efi');
    expect(existsSync(NVRAM)).toBe(true);
    // Converged: the resolved loader in the running XML is not a difference.
    writeManifests(N.mdir, manifests({ state: 'running', cmdline: `${CMDLINE} quiet`, uefi: true }));
    expect((await cli(['reconcile', N.mdir, '--dry-run', '--detailed-exitcode'])).code).toBe(0);
    // Removed from the manifests: deleted (forced off), its NVRAM with it.
    await reconcileOk({ state: 'running', cmdline: `${CMDLINE} quiet` });
    expect(virshOk('dominfo', UEFI)).toBe(false);
    expect(existsSync(NVRAM)).toBe(false);
  }, 180_000);
});
