import { describe, expect, it } from 'vitest';
import { buildStatus, revisionLabel, type HostView } from '../../../src/status/index.js';
import type { ResourceRecord, RevisionRecord } from '../../../src/state/index.js';
import type { DesiredResource } from '../../../src/reconcile/desired.js';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { desiredFrom, labManifests, tempDir, writeManifests } from '../../support/manifests.js';
import type { ResourceKind } from '../../../src/model/kinds.js';

const P = 'vftest-st';

function rec(kind: ResourceKind, name: string, extra: Partial<ResourceRecord> = {}): ResourceRecord {
  return {
    kind, name, host: 'local', uuid: `${kind}-${name}`, specHash: null, generation: 1, desiredState: null, observedStatus: 'active', lastError: null, attempts: 1,
    details: {}, createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z', lastAppliedRevision: null, ...extra,
  };
}

function view(domains: { name: string; active: boolean }[], volumeKeys: string[] = []): HostView {
  return {
    snapshot: { pools: [], networks: [], domains: domains.map((d) => ({ ...d, uuid: d.name, id: d.active ? 1 : -1, autostart: false })) },
    volumeKeys: new Set(volumeKeys), volumeNames: new Set(),
  };
}

describe('buildStatus', () => {
  it('STATUS comes from observed vs desired: a VM destroyed outside virtform is drifted, not "running"', () => {
    const records = [rec('VirtualMachine', 'vm', { desiredState: 'running', observedStatus: 'running' })];
    const before = buildStatus({ records, host: view([{ name: 'vm', active: true }]), revisions: new Map() });
    expect(before.resources[0]).toMatchObject({ desired: 'running', observed: 'running', status: 'converged', reason: null });
    const after = buildStatus({ records, host: view([{ name: 'vm', active: false }]), revisions: new Map() });
    expect(after.resources[0]).toMatchObject({ desired: 'running', observed: 'stopped', status: 'drifted', recordedStatus: 'running' });
    expect(after.resources[0]!.reason).toMatch(/stopped on the host \(want running\)/);
    const gone = buildStatus({ records, host: view([]), revisions: new Map() });
    expect(gone.resources[0]).toMatchObject({ observed: 'absent', status: 'drifted' });
    expect(gone.summary).toEqual({ total: 1, byStatus: { drifted: 1 } });
  });

  it('status tells the plan\'s story: a change the plan has is drifted (drift) or pending, never converged', () => {
    const records = [rec('VirtualMachine', 'vm', { desiredState: 'running', observedStatus: 'running' })];
    const host = view([{ name: 'vm', active: true }]);
    const drifted = buildStatus({ records, host, revisions: new Map(), drift: new Map([['VirtualMachine/vm', 'autostart changed outside virtform (drift)']]) });
    expect(drifted.resources[0]).toMatchObject({ status: 'drifted', reason: 'autostart changed outside virtform (drift)' });
    const pending = buildStatus({ records, host, revisions: new Map(), pending: new Map([['VirtualMachine/vm', 'finishing an operation interrupted in an earlier run']]) });
    expect(pending.resources[0]).toMatchObject({ status: 'pending', reason: 'finishing an operation interrupted in an earlier run' });
  });

  it('failed, pending, stalled, offline; declared rows; volumes by key; plan order', async () => {
    const work = tempDir('vftest-status-build-');
    const desired = await desiredFrom(writeManifests(join(work, 'm'), labManifests({ prefix: P, poolPath: '/srv/p' })));
    rmSync(work, { recursive: true, force: true });
    const declared: readonly DesiredResource[] = desired.resources;
    const vm = declared.find((d) => d.kind === 'VirtualMachine')!;
    const base = declared.find((d) => d.name === `${P}-base`)!;
    const records = [
      rec('VirtualMachine', vm.name, { desiredState: 'running', observedStatus: 'failed', lastError: 'boom', specHash: vm.specHash }),
      rec('Volume', base.name, { observedStatus: 'ready', uuid: '/srv/p/base.qcow2', specHash: 'old' }),
      rec('Network', `${P}-gone`, { observedStatus: 'active' }),
    ];
    const host = view([{ name: vm.name, active: true }], ['/srv/p/base.qcow2']);
    const s = buildStatus({ records, declared, host, revisions: new Map() });
    const by = (name: string) => s.resources.find((r) => r.name === name)!;
    expect(by(vm.name)).toMatchObject({ status: 'failed', reason: 'boom', observed: 'running' });
    expect(by(base.name)).toMatchObject({ status: 'pending', observed: 'present', reason: 'manifest changed since the last apply' });
    expect(by(`${P}-gone`)).toMatchObject({ status: 'pending', desired: 'undeclared (will be deleted)', observed: 'absent' });
    expect(by(`${P}-data`)).toMatchObject({ status: 'pending', reason: 'not created yet', attempts: 0, revision: null });
    expect(s.resources.map((r) => r.kind)).toEqual(['StoragePool', 'Volume', 'Volume', 'Volume', 'Network', 'Network', 'VirtualMachine', 'VirtualMachine']);

    const stalled = buildStatus({ records, declared, host, revisions: new Map(), stalled: new Map([[`VirtualMachine/${vm.name}`, 'invalid: nope']]) });
    expect(stalled.resources.find((r) => r.name === vm.name)).toMatchObject({ status: 'stalled', reason: 'invalid: nope' });

    // Offline: a VM's addresses are unknown (null), not "not ready".
    expect(buildStatus({ records: [rec('VirtualMachine', 'v')], revisions: new Map() }).resources[0]).toMatchObject({ addresses: null, addressesReady: null, addressesNote: null });
    const offline = buildStatus({ records: [rec('Network', 'n', { observedStatus: 'active' })], revisions: new Map() });
    expect(offline.resources[0]).toMatchObject({ observed: 'unknown', status: 'applied', desired: 'active' });
  });

  it('revisions carry gitDirty and a label with -dirty', () => {
    const rev: RevisionRecord = {
      id: 18, runId: 'r', manifestDigest: 'x', gitCommit: '5203174022ffffffffff', gitDirty: true, startedAt: 'a', finishedAt: 'b', outcome: 'succeeded', summary: {},
    };
    const s = buildStatus({ records: [rec('Network', 'n', { lastAppliedRevision: 18 })], revisions: new Map([[18, rev]]) });
    expect(s.resources[0]!.revision).toEqual({ id: 18, gitCommit: rev.gitCommit, gitDirty: true, manifestDigest: 'x', finishedAt: 'b', label: '#18 5203174022-dirty' });
    expect(revisionLabel({ ...rev, gitDirty: false })).toBe('#18 5203174022');
    expect(revisionLabel({ ...rev, gitCommit: null, gitDirty: false })).toBe('#18');
  });
});
