/**
 * The no-op fast path's key (issue 22, `core/checks.ts`): a recorded check names the definition's
 * bytes only while every other input of its comparison is the same; any input that differs (or an
 * open journal entry, a suspended resource, no record) makes the run parse and compare in full.
 */
import { describe, expect, it } from 'vitest';
import { checkInputs, knownDigest, type CheckedRecord } from '../../../src/reconcile/core/checks.js';
import type { AnyDesired } from '../../../src/reconcile/core/resource.js';

const desired = { kind: 'VirtualMachine', name: 'v', host: 'local', key: 'VirtualMachine/v', adopt: false, suspended: false, labels: {}, config: {}, specHash: 'h1' } as unknown as AnyDesired;
const record: CheckedRecord = { uuid: 'u1', specHash: 'h1', desiredState: 'running', lastError: null, facts: { nics: ['52:54:00:00:00:01'] } };
const baseline = { sha256: 'b1', version: 'libvirt 9.0.0, hypervisor 7.2.0' };
const version = 'libvirt 9.0.0, hypervisor 7.2.0';
const check = { sha256: 'def-sha', inputs: checkInputs(desired, record, baseline, version) };

describe('knownDigest: the bytes a definition must hash to for its comparison to be skipped', () => {
  it('names the recorded sha256 when every input is the one recorded', () => {
    expect(knownDigest(check, desired, record, false, baseline, version)).toBe('def-sha');
    // A full record (details.facts) and an index entry (facts) are the same input.
    const full: CheckedRecord = { uuid: 'u1', specHash: 'h1', desiredState: 'running', lastError: null, details: { facts: record.facts } };
    expect(knownDigest(check, desired, full, false, baseline, version)).toBe('def-sha');
  });

  it('names nothing when any input differs, or nothing may be skipped', () => {
    const cases: [string, Parameters<typeof knownDigest>][] = [
      ['no check recorded', [undefined, desired, record, false, baseline, version]],
      ['not declared', [check, undefined, record, false, baseline, version]],
      ['not recorded', [check, desired, undefined, false, baseline, version]],
      ['an open journal entry', [check, desired, record, true, baseline, version]],
      ['suspended', [check, { ...desired, suspended: true }, record, false, baseline, version]],
      ['another spec', [check, { ...desired, specHash: 'h2' }, record, false, baseline, version]],
      ['adopting', [check, { ...desired, adopt: true }, record, false, baseline, version]],
      ['another recorded spec', [check, desired, { ...record, specHash: 'h0' }, false, baseline, version]],
      ['another identity', [check, desired, { ...record, uuid: 'u2' }, false, baseline, version]],
      ['other facts', [check, desired, { ...record, facts: { nics: ['52:54:00:00:00:02'] } }, false, baseline, version]],
      ['a last error', [check, desired, { ...record, lastError: 'boom' }, false, baseline, version]],
      ['another desired state recorded', [check, desired, { ...record, desiredState: 'stopped' }, false, baseline, version]],
      ['another baseline', [check, desired, record, false, { ...baseline, sha256: 'b2' }, version]],
      ['no baseline', [check, desired, record, false, undefined, version]],
      ['another libvirt', [check, desired, record, false, baseline, 'libvirt 9.1.0, hypervisor 7.2.0']],
    ];
    for (const [why, args] of cases) expect(knownDigest(...args), why).toBeUndefined();
  });
});
