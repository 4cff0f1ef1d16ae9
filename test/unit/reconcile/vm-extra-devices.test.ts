/**
 * spec.extraDevices on the FakeHost: defined with the domain, a second run is a no-op, a changed
 * list is a [restart] change (restart required on a running VM), a device added or removed outside
 * virtform is drift of the field and corrected.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { FakeHost } from '../../support/fake-host.js';
import { desiredFrom, tempDir, writeManifests } from '../../support/manifests.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { reconcile, planOnly } from '../../../src/reconcile/engine.js';
import { renderPlan } from '../../../src/cli/render.js';

const FAST_RETRY = { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 };
const VM = 'vftest-xdevr-vm';
const plain = { color: false };
const WATCHDOG = "<watchdog action='reset' model='i6300esb'/>";
const RNG = "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>";

function files(devices: string[], state: string): Record<string, string> {
  return {
    'vm.yaml': `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${VM}}
spec:
  vcpus: 1
  memory: 64MiB
  state: ${state}
${devices.length ? `  extraDevices:\n${devices.map((d) => `    - ${JSON.stringify(d)}`).join('\n')}\n` : ''}`,
  };
}

let work: string;
let mdir: string;
let host: FakeHost;
let store: StateStore;
async function desired(devices: string[], state = 'stopped') {
  writeManifests(mdir, files(devices, state));
  return desiredFrom(mdir);
}
const run = async (devices: string[], state?: string) => reconcile({ host, store, desired: await desired(devices, state), retry: FAST_RETRY, gracefulStop: false });
const plan = async (devices: string[], state?: string) => (await planOnly(host, store, await desired(devices, state))).plan;
const vm = () => host.domains.get(VM)!;

beforeEach(async () => {
  work = tempDir();
  mdir = join(work, 'manifests');
  host = new FakeHost();
  store = await openStateStore(join(work, 'state.db'));
});
afterEach(async () => {
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

describe('spec.extraDevices', () => {
  it('is defined (canonical) with the domain; a reindented manifest is no change; a second run makes no call', async () => {
    expect((await run(["<watchdog model='i6300esb' action='reset'/>", RNG])).outcome).toBe('succeeded');
    expect(vm().def.extraDevices).toEqual([WATCHDOG, RNG]);
    const m = host.mutationCount();
    const r = await run(['<watchdog  action="reset"\n model="i6300esb" />', "<rng model='virtio'>\n  <backend model='random'>/dev/urandom</backend>\n</rng>"]);
    expect(r.plan.changes).toEqual([]);
    expect(host.mutationCount()).toBe(m);
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
