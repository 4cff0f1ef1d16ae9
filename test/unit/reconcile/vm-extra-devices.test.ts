/**
 * spec.extraDevices on the FakeHost: defined with the domain, a second run is a no-op, a changed
 * list is a [restart] change (restart required on a running VM), a device added or removed outside
 * virtform is drift of the field and corrected.
 */
import { describe, expect, it } from 'vitest';
import { useHarness } from '../../support/harness.js';
import { scenario } from '../../support/scenario.js';
import { renderPlan } from '../../../src/cli/render.js';

const VM = 'vftest-xdevr-vm';
const plain = { color: false };
const WATCHDOG = "<watchdog action='reset' model='i6300esb'/>";
const RNG = "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>";

const fx = useHarness();
const vmWith = (devices: string[], state = 'stopped') => scenario().vm(VM, { state, extraDevices: devices.length ? devices : undefined });
const run = async (devices: string[], state?: string) => fx.reconcile(vmWith(devices, state));
const plan = async (devices: string[], state?: string) => fx.plan(vmWith(devices, state));
const vm = () => fx.host.domains.get(VM)!;

describe('spec.extraDevices', () => {
  it('is defined (canonical) with the domain; a reindented manifest is no change; a second run makes no call', async () => {
    expect((await run(["<watchdog model='i6300esb' action='reset'/>", RNG])).outcome).toBe('succeeded');
    expect(vm().def.extraDevices).toEqual([WATCHDOG, RNG]);
    const m = fx.host.mutationCount();
    const r = await run(['<watchdog  action="reset"\n model="i6300esb" />', "<rng model='virtio'>\n  <backend model='random'>/dev/urandom</backend>\n</rng>"]);
    expect(r.plan.changes).toEqual([]);
    expect(fx.host.mutationCount()).toBe(m);
  });

  it('a device removed from the manifest is a [restart] change and gone after apply', async () => {
    await run([WATCHDOG, RNG]);
    const p = await plan([RNG]);
    expect(renderPlan(p, plain)).toContain(`~ spec.extraDevices: ${JSON.stringify([WATCHDOG, RNG])} → ${JSON.stringify([RNG])} [restart]`);
    expect(p.changes[0]!.drift).toBe(false);
    await run([RNG]);
    expect(vm().def.extraDevices).toEqual([RNG]);
    expect((await plan([RNG])).changes).toEqual([]);
  });

  const outside: [string, (devs: string[]) => string[]][] = [
    ['a device added outside virtform', (d) => [...d, "<panic model='isa'/>"]],
    ['a device removed outside virtform', (d) => d.slice(1)],
    ['a device changed outside virtform', (d) => ["<watchdog action='poweroff' model='i6300esb'/>", ...d.slice(1)]],
  ];
  for (const [what, mutate] of outside) {
    it(`${what}: drift of spec.extraDevices, corrected`, async () => {
      await run([WATCHDOG, RNG]);
      vm().def = { ...vm().def, extraDevices: mutate(vm().def.extraDevices ?? []) };
      const p = await plan([WATCHDOG, RNG]);
      expect(renderPlan(p, plain)).toMatch(/~ spec\.extraDevices: .* \(drift\) \[restart\]/);
      expect(p.changes[0]!.drift).toBe(true);
      await run([WATCHDOG, RNG]);
      expect(vm().def.extraDevices).toEqual([WATCHDOG, RNG]);
      expect((await plan([WATCHDOG, RNG])).changes).toEqual([]);
    });
  }

  it('on a running VM (restartPolicy Never) the new list is defined and marked restart required until the next boot', async () => {
    await run([], 'running');
    const p = await plan([WATCHDOG], 'running');
    expect(renderPlan(p, plain)).toContain(`+ spec.extraDevices: ${JSON.stringify([WATCHDOG])} [restart]`);
    await run([WATCHDOG], 'running');
    expect(vm().def.extraDevices).toEqual([WATCHDOG]);
    const again = await plan([WATCHDOG], 'running');
    expect(again.changes).toEqual([]);
    expect(again.notices.join('\n')).toMatch(/restart required for spec\.extraDevices/);
  });
});
