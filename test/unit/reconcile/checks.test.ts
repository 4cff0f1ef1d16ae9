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

describe('checkInputs: the digest kept per resource between runs', () => {
  it('is the digest of the inputs as they are now, run after run (the same facts in another key order too), never a stale one', () => {
    const fresh = (r: CheckedRecord): string => {
      // The digest computed as the first run of a process does: from a resource key not asked before.
      const other = { ...desired, key: `VirtualMachine/fresh-${Math.random()}` } as AnyDesired;
      return checkInputs(other, r, baseline, version);
    };
    const facts = { nics: ['52:54:00:00:00:01'], pending: { a: 1, b: 2 } };
    const r1: CheckedRecord = { ...record, facts };
    const d1 = checkInputs(desired, r1, baseline, version);
    expect(d1).toBe(fresh(r1));
    expect(checkInputs(desired, r1, baseline, version)).toBe(d1);
    // The same facts in another key order: the same digest (the canonical form decides).
    expect(checkInputs(desired, { ...record, facts: { pending: { b: 2, a: 1 }, nics: ['52:54:00:00:00:01'] } }, baseline, version)).toBe(d1);
    // The same object changed in place: another digest, the one of its new content.
    facts.pending.a = 3;
    const d2 = checkInputs(desired, r1, baseline, version);
    expect(d2).not.toBe(d1);
    expect(d2).toBe(fresh(r1));
    facts.pending.a = 1;
    expect(checkInputs(desired, r1, baseline, version)).toBe(d1);
  });
});

describe('checkInputs: the memo of the same frozen objects (a watch step, SQLite kept indexes)', () => {
  // The digest as a process computes it first (a key and objects not seen before). No defaults: an
  // explicit undefined baseline is an input.
  const fresh = (r: CheckedRecord, b: typeof baseline | undefined, v: string = version, d: AnyDesired = desired): string =>
    checkInputs({ ...d, key: `VirtualMachine/fresh-${Math.random()}` } as AnyDesired, { ...r }, b && { ...b }, v);

  it('answers the digest of the inputs as they are: another record, baseline, version or desired field gives its own', () => {
    const d = { ...desired, key: 'VirtualMachine/memo' } as AnyDesired;
    const r1 = Object.freeze({ ...record, facts: Object.freeze({ nics: ['52:54:00:00:00:01'] }) });
    const b1 = Object.freeze({ ...baseline });
    const first = checkInputs(d, r1, b1, version);
    expect(first).toBe(fresh(r1, b1));
    expect(checkInputs(d, r1, b1, version)).toBe(first);
    // Another (frozen) record object, as the store hands out after that row was written.
    const r2 = Object.freeze({ ...r1, lastError: 'boom' });
    expect(checkInputs(d, r2, b1, version)).toBe(fresh(r2, b1));
    expect(checkInputs(d, r2, b1, version)).not.toBe(first);
    const b2 = Object.freeze({ ...baseline, sha256: 'b2' });
    expect(checkInputs(d, r1, b2, version)).toBe(fresh(r1, b2));
    expect(checkInputs(d, r1, undefined, version)).toBe(fresh(r1, undefined));
    expect(checkInputs(d, r1, b1, 'libvirt 9.1.0')).toBe(fresh(r1, b1, 'libvirt 9.1.0'));
    expect(checkInputs(d, r1, b1, version)).toBe(first);
    // The desired object's fields that are inputs, changed in place: its new digest.
    (d as { specHash: string }).specHash = 'h9';
    expect(checkInputs(d, r1, b1, version)).toBe(fresh(r1, b1, version, d));
    (d as { specHash: string }).specHash = 'h1';
    (d as { adopt: boolean }).adopt = true;
    expect(checkInputs(d, r1, b1, version)).toBe(fresh(r1, b1, version, d));
    (d as { adopt: boolean }).adopt = false;
    expect(checkInputs(d, r1, b1, version)).toBe(first);
  });
});
