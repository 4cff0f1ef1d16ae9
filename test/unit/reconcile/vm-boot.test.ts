/**
 * spec.boot on the FakeHost: firmware, a kernel (host path or volume), initrd and command line in
 * the domain definition; a change outside virtform (the command line edited) shown as drift
 * `[restart]` and corrected; a manifest edit of the command line needs a restart; the XML builder
 * and parser agree on `<os>`.
 */
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { useHarness } from '../../support/harness.js';
import { scenario } from '../../support/scenario.js';
import { renderPlan } from '../../../src/cli/render.js';
import { buildDomainXml, parseDomainXml } from '../../../src/libvirt/xml/index.js';
import type { DomainDef } from '../../../src/reconcile/ports.js';

const P = 'vftest-cloudinit-boot';
const VM = `${P}-vm`;
const plain = { color: false };

/** A pool, a kernel volume, and the VM booting with `boot` (YAML). */
const files = (boot: string, state = 'running') => scenario()
  .pool(`${P}-pool`, { path: '/srv/pools/boot' }).volume(`${P}-kernel`, { format: 'raw' })
  .vm(VM, { state, boot: parse(boot) });

const fx = useHarness();
const desired = async (boot: string, state?: string) => fx.desired(files(boot, state));
const run = async (boot: string, state?: string) => fx.reconcile(files(boot, state));
const plan = async (boot: string, state?: string) => fx.plan(files(boot, state));
const vm = () => fx.host.domains.get(VM)!;
const BOOT = '{kernel: /var/lib/virtform/tiny-guest/vmlinuz, initrd: /var/lib/virtform/tiny-guest/initrd.img, cmdline: "console=ttyS0 panic=-1"}';

describe('spec.boot', () => {
  it('defines the domain with the kernel, initrd and command line; converged after', async () => {
    expect((await run(BOOT)).outcome).toBe('succeeded');
    expect(vm().def.boot).toEqual({ kernel: '/var/lib/virtform/tiny-guest/vmlinuz', initrd: '/var/lib/virtform/tiny-guest/initrd.img', cmdline: 'console=ttyS0 panic=-1' });
    expect((await plan(BOOT)).changes).toEqual([]);
  });

  it('a command line changed outside virtform is drift [restart], corrected, then converged', async () => {
    await run(BOOT);
    vm().def = { ...vm().def, boot: { ...vm().def.boot, cmdline: 'console=ttyS0 init=/bin/sh' } };
    const p = await plan(BOOT);
    const text = renderPlan(p, plain);
    const c = p.changes.find((x) => x.name === VM)!;
    expect(c.drift, text).toBe(true);
    expect(text).toContain('~ spec.boot.cmdline: "console=ttyS0 init=/bin/sh" → "console=ttyS0 panic=-1" (drift) [restart]');
    expect((await run(BOOT)).outcome).toBe('succeeded');
    expect(vm().def.boot?.cmdline).toBe('console=ttyS0 panic=-1');
    expect((await plan(BOOT)).changes).toEqual([]);
  });

  it('a manifest edit of the command line is not drift and needs a restart', async () => {
    await run(BOOT);
    const next = BOOT.replace('panic=-1', 'panic=-1 quiet');
    const text = renderPlan(await plan(next), plain);
    expect(text).toContain('~ spec.boot.cmdline: "console=ttyS0 panic=-1" → "console=ttyS0 panic=-1 quiet" [restart]');
    expect(text).not.toContain('(drift)');
  });

  it('kernelVolume boots the volume file; the VM depends on the volume', async () => {
    const b = `{firmware: uefi, kernelVolume: ${P}-kernel, cmdline: console=ttyS0}`;
    const p = await plan(b, 'stopped');
    const steps = p.steps.map((s) => `${s.op.op}:${s.name}`);
    expect(steps.indexOf(`volume.create:${P}-kernel`)).toBeGreaterThanOrEqual(0);
    expect(steps.indexOf(`volume.create:${P}-kernel`)).toBeLessThan(steps.indexOf(`vm.define:${VM}`));
    expect((await run(b, 'stopped')).outcome).toBe('succeeded');
    expect(vm().def.boot).toEqual({ firmware: 'efi', kernel: `/srv/pools/boot/${P}-kernel.img`, cmdline: 'console=ttyS0' });
    expect(renderPlan(await plan(`{kernelVolume: ${P}-kernel, cmdline: console=ttyS0}`, 'stopped'), plain)).toContain('~ spec.boot.firmware: "uefi" → "bios"');
  });

  it('boot: {firmware: bios} is the default: same spec hash as no boot at all', async () => {
    const a = (await desired('{firmware: bios}')).resources.find((r) => r.name === VM)!;
    const b = (await desired('{}')).resources.find((r) => r.name === VM)!;
    expect(a.specHash).toBe(b.specHash);
    expect('boot' in a.config).toBe(false);
  });
});

describe('domain XML <os>', () => {
  const base: DomainDef = {
    name: 'x', type: 'qemu', vcpus: 1, memoryKiB: 65536, disks: [], nics: [], marker: { kind: 'VirtualMachine', name: 'x', specHash: 'h' },
  };
  it('round-trips kernel, initrd, cmdline and firmware efi (secure boot off: pc has no SMM)', () => {
    const xml = buildDomainXml({ ...base, boot: { firmware: 'efi', kernel: '/k', initrd: '/i', cmdline: 'a=b c<d' } });
    expect(xml).toContain(`<os firmware="efi">`);
    expect(xml).toMatch(/<feature enabled="no" name="secure-boot"\/>/);
    expect(parseDomainXml(xml).boot).toEqual({ firmware: 'efi', kernel: '/k', initrd: '/i', cmdline: 'a=b c<d' });
  });
  it('no boot: no kernel elements, parsed as no boot', () => {
    const xml = buildDomainXml(base);
    expect(xml).not.toContain('<kernel');
    expect(parseDomainXml(xml).boot).toBeUndefined();
  });
  it('a running UEFI domain (resolved loader, no firmware attribute) is efi', () => {
    const xml = buildDomainXml(base).replace(/<os>/, `<os><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader><nvram>/var/lib/libvirt/qemu/nvram/x_VARS.fd</nvram>`);
    expect(parseDomainXml(xml).boot).toEqual({ firmware: 'efi' });
  });
  it('refuses an initrd without a kernel', () => {
    expect(() => buildDomainXml({ ...base, boot: { initrd: '/i' } })).toThrow(/need a boot kernel/);
  });
});
