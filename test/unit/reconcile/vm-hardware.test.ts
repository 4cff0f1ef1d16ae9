/**
 * VirtualMachine spec.cpu, spec.graphics and spec.guestAgent on the FakeHost: the definition
 * built from them, deep drift of each, their [restart] effect on a running VM, the check against
 * the host's domain capabilities when planning (a conflict, not an apply-time libvirt error), and
 * the plan a VM defined before the guest agent channel existed gets.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { FakeHost, fakeDomainCapabilities } from '../../support/fake-host.js';
import { desiredFrom, tempDir, writeManifests } from '../../support/manifests.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { reconcile, planOnly } from '../../../src/reconcile/engine.js';
import { renderPlan } from '../../../src/cli/render.js';
import { resourceRef, LOCAL_HOST } from '../../../src/model/kinds.js';

const FAST_RETRY = { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 };
const P = 'vftest-hw';
const VM = `${P}-vm`;
const plain = { color: false };

function files(extra = '', state = 'running'): Record<string, string> {
  return {
    'vm.yaml': `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${VM}}
spec:
  vcpus: 1
  memory: 64MiB
  state: ${state}${extra ? `\n  ${extra.trim().split('\n').join('\n  ')}` : ''}
`,
  };
}

let work: string;
let mdir: string;
let host: FakeHost;
let store: StateStore;

async function desired(extra = '', state?: string) {
  writeManifests(mdir, files(extra, state));
  return desiredFrom(mdir);
}
async function run(extra = '', state?: string) {
  return reconcile({ host, store, desired: await desired(extra, state), retry: FAST_RETRY, gracefulStop: false });
}
async function plan(extra = '', state?: string) {
  return (await planOnly(host, store, await desired(extra, state))).plan;
}
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

describe('the definition', () => {
  it('has the declared cpu and graphics and the guest agent channel; a second run is a no-op without mutations', async () => {
    const spec = 'cpu: {mode: host-model}\ngraphics: {type: vnc}';
    expect((await run(spec)).outcome).toBe('succeeded');
    expect(vm().def.cpu).toEqual({ mode: 'host-model' });
    expect(vm().def.graphics).toEqual({ type: 'vnc', listen: '127.0.0.1' });
    expect(vm().def.guestAgent).toBe(true);
    // the running domain has a port (libvirt's autoport): not compared
    expect((await host.getRunningDomain(VM))!.graphics[0]!.port).toBeGreaterThanOrEqual(5900);
    const again = await run(spec);
    expect(again.outcome).toBe('noop');
    expect(again.mutations).toBe(0);
  });

  it('defaults: no cpu element, no graphics (type none is the same as none), the guest agent channel', async () => {
    expect((await run()).outcome).toBe('succeeded');
    expect(vm().def.cpu).toBeUndefined();
    expect(vm().def.graphics).toBeUndefined();
    expect(vm().def.guestAgent).toBe(true);
    // libvirt writes custom qemu64 into the definition: that is the undeclared default, not drift
    expect((await host.getDomain(VM))!.cpu).toEqual({ mode: 'custom', model: 'qemu64' });
    expect((await plan('graphics: {type: none}')).changes).toEqual([]);
  });

  it('reads the domain capabilities only when a VM declares cpu or graphics', async () => {
    await run();
    host.calls = [];
    await plan();
    expect(host.calls.filter((c) => c.startsWith('domainCapabilities'))).toEqual([]);
    await plan('cpu: {mode: maximum}');
    expect(host.calls.filter((c) => c.startsWith('domainCapabilities'))).toEqual(['domainCapabilities:*']);
  });
});

describe('checked against the host domain capabilities when planning', () => {
  it('TCG: host-passthrough is a conflict naming the VM and the modes the host offers; nothing is defined', async () => {
    host.type = 'qemu';
    const p = await plan('cpu: {mode: host-passthrough}');
    const c = p.changes.find((x) => x.name === VM)!;
    expect(c.action).toBe('conflict');
    expect(c.reason).toBe(`VirtualMachine ${VM}: spec.cpu.mode host-passthrough is not offered by the host for qemu domains (TCG emulates the CPU: there is no host CPU to pass through); it offers maximum, host-model, custom`);
    const r = await run('cpu: {mode: host-passthrough}');
    expect(r.outcome).not.toBe('succeeded');
    expect(host.domains.has(VM)).toBe(false);
  });

  it('KVM: host-passthrough is defined and started', async () => {
    host.type = 'kvm';
    expect((await run('cpu: {mode: host-passthrough}')).outcome).toBe('succeeded');
    expect(vm().def.cpu).toEqual({ mode: 'host-passthrough' });
    expect(vm().active).toBe(true);
  });

  it('an existing VM changed to an unoffered mode is a conflict too, and keeps its definition', async () => {
    await run('cpu: {mode: maximum}');
    const p = await plan('cpu: {mode: host-passthrough}');
    expect(p.changes[0]!.action).toBe('conflict');
    expect(vm().def.cpu).toEqual({ mode: 'maximum' });
  });

  it('custom: an unknown model is a conflict listing the usable ones; a model marked not usable is a note', async () => {
    host.type = 'kvm';
    const bad = await plan('cpu: {mode: custom, model: Skylake-Bogus}');
    expect(bad.changes[0]!.action).toBe('conflict');
    expect(bad.changes[0]!.reason).toContain('spec.cpu.model Skylake-Bogus is not a CPU model the host knows for kvm domains; usable models: pentium3');
    const p = await plan('cpu: {mode: custom, model: Westmere}');
    expect(p.changes[0]!.action).toBe('create');
    expect(renderPlan(p, plain)).toContain('CPU model Westmere is listed as not usable on this host');
  });

  it('spice where the host QEMU has none is a conflict; vnc is fine', async () => {
    host.domainCaps = { ...fakeDomainCapabilities('qemu'), graphicsTypes: ['vnc', 'egl-headless'] };
    const p = await plan('graphics: {type: spice}');
    expect(p.changes[0]!.action).toBe('conflict');
    expect(p.changes[0]!.reason).toBe(`VirtualMachine ${VM}: spec.graphics.type spice is not offered by the host's QEMU; it offers vnc`);
    expect((await plan('graphics: {type: vnc}')).changes[0]!.action).toBe('create');
  });

  it('a host without domain capabilities (the test driver) is not checked', async () => {
    host.domainCaps = null;
    expect((await plan('cpu: {mode: host-passthrough}')).changes[0]!.action).toBe('create');
  });
});

describe('changes and drift', () => {
  it('a changed cpu mode on a running VM is a [restart] change: defined, marked restart required', async () => {
    await run('cpu: {mode: host-model}');
    const p = await plan('cpu: {mode: maximum}');
    const text = renderPlan(p, plain);
    expect(text).toContain('~ spec.cpu: {"mode":"host-model"} → {"mode":"maximum"} [restart]');
    expect(text).toMatch(/restart required for spec\.cpu .*takes effect on next boot/);
    expect((await run('cpu: {mode: maximum}')).outcome).toBe('succeeded');
    expect(vm().def.cpu).toEqual({ mode: 'maximum' });
    expect(vm().live!.cpu).toEqual({ mode: 'host-model' });
    const facts = (await store.resources.get(resourceRef('VirtualMachine', VM)))!.details.facts as { restartRequired?: { fields: string[] } };
    expect(facts.restartRequired?.fields).toEqual(['spec.cpu']);
  });

  it('restartPolicy OnChange restarts the VM for a graphics change', async () => {
    await run('restartPolicy: OnChange');
    const id = vm().id;
    const p = await plan('restartPolicy: OnChange\ngraphics: {type: vnc, listen: 127.0.0.1}');
    expect(renderPlan(p, plain)).toContain('+ spec.graphics: {"type":"vnc","listen":"127.0.0.1"} [restart]');
    expect(p.changes[0]!.steps.map((s) => s.op)).toEqual(['vm.define', 'vm.stop', 'vm.start']);
    expect((await run('restartPolicy: OnChange\ngraphics: {type: vnc, listen: 127.0.0.1}')).outcome).toBe('succeeded');
    expect(vm().id).not.toBe(id);
    expect(vm().live!.graphics).toEqual({ type: 'vnc', listen: '127.0.0.1' });
  });

  const drifted: [string, string, (h: FakeHost) => void, RegExp][] = [
    ['cpu mode (virsh define)', 'cpu: {mode: host-model}', (h) => { h.domains.get(VM)!.def.cpu = { mode: 'maximum' }; },
      /~ spec\.cpu: \{"mode":"maximum"\} → \{"mode":"host-model"\} \(drift\) \[restart\]/],
    ['cpu model', 'cpu: {mode: custom, model: Westmere}', (h) => { h.domains.get(VM)!.def.cpu = { mode: 'custom', model: 'Nehalem' }; },
      /~ spec\.cpu: \{"mode":"custom","model":"Nehalem"\} → \{"mode":"custom","model":"Westmere"\} \(drift\) \[restart\]/],
    ['a cpu given to a VM that declares none', '', (h) => { h.domains.get(VM)!.def.cpu = { mode: 'host-model' }; },
      /- spec\.cpu: \{"mode":"host-model"\} \(drift\) \[restart\]/],
    ['graphics listen', 'graphics: {type: vnc}', (h) => { h.domains.get(VM)!.def.graphics = { type: 'vnc', listen: '0.0.0.0' }; },
      /~ spec\.graphics: \{"type":"vnc","listen":"0\.0\.0\.0"\} → \{"type":"vnc","listen":"127\.0\.0\.1"\} \(drift\) \[restart\]/],
    ['graphics removed', 'graphics: {type: spice}', (h) => { delete h.domains.get(VM)!.def.graphics; },
      /\+ spec\.graphics: \{"type":"spice","listen":"127\.0\.0\.1"\} \(drift\) \[restart\]/],
    ['guest agent channel removed', '', (h) => { h.domains.get(VM)!.def.guestAgent = false; },
      /~ spec\.guestAgent: false → true \(drift\) \[restart\]/],
  ];
  for (const [what, spec, mutate, line] of drifted) {
    it(`${what}: drift, redefined, then converged`, async () => {
      await run(spec, 'stopped');
      const before = structuredClone(vm().def);
      mutate(host);
      const p = await plan(spec, 'stopped');
      expect(renderPlan(p, plain)).toMatch(line);
      expect(p.changes[0]!.drift).toBe(true);
      expect((await run(spec, 'stopped')).outcome).toBe('succeeded');
      expect({ ...vm().def, marker: undefined, uuid: undefined }).toEqual({ ...before, marker: undefined, uuid: undefined });
      expect((await plan(spec, 'stopped')).changes).toEqual([]);
    });
  }

  it('guestAgent: false leaves the channel out, and removing it from a VM is a [restart] change', async () => {
    await run();
    const p = await plan('guestAgent: false');
    expect(renderPlan(p, plain)).toContain('~ spec.guestAgent: true → false [restart]');
    await run('guestAgent: false');
    expect(vm().def.guestAgent).toBe(false);
    expect((await plan('guestAgent: false')).changes).toEqual([]);
  });
});

describe('a VM defined by a virtform from before the guest agent channel', () => {
  async function olderVirtform(): Promise<void> {
    // as that virtform left it: no channel in the definition, nothing recorded about one
    vm().def = { ...vm().def, guestAgent: false };
    if (vm().active) vm().live = { ...vm().live!, guestAgent: false };
    const rec = (await store.resources.get(resourceRef('VirtualMachine', VM)))!;
    const { guestAgent: _g, ...facts } = rec.details.facts as Record<string, unknown>;
    await store.resources.upsert({ kind: 'VirtualMachine', name: VM, host: LOCAL_HOST, details: { ...rec.details, facts } });
  }

  it('running: planned once as a [restart] change (not drift), the definition gets the channel, restart required until the next boot', async () => {
    await run();
    await olderVirtform();
    const p = await plan();
    const text = renderPlan(p, plain);
    expect(text).toContain('~ spec.guestAgent: false → true [restart]');
    expect(text).toContain('restart required for spec.guestAgent (running with false, defined true); takes effect on next boot (restartPolicy: Never)');
    expect(p.changes[0]!.drift).toBe(false);
    expect(p.changes[0]!.steps.map((s) => s.op)).toEqual(['vm.define']);
    const id = vm().id;
    expect((await run()).outcome).toBe('succeeded');
    expect(vm().id).toBe(id); // not restarted (restartPolicy: Never)
    expect(vm().def.guestAgent).toBe(true);
    const next = await plan();
    expect(next.changes).toEqual([]);
    expect(next.notices).toEqual([`VirtualMachine/${VM}: restart required for spec.guestAgent (running with false, defined true)`]);
  });

  it('stopped: redefined with the channel, nothing else', async () => {
    await run('', 'stopped');
    await olderVirtform();
    const p = await plan('', 'stopped');
    expect(renderPlan(p, plain)).toContain('~ spec.guestAgent: false → true [restart]');
    expect(p.notices).toEqual([]);
    await run('', 'stopped');
    expect(vm().def.guestAgent).toBe(true);
    expect((await plan('', 'stopped')).changes).toEqual([]);
  });
});
