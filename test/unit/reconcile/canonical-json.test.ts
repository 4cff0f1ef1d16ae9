/**
 * canonicalJson (src/reconcile/core/resource.ts) writes what it always wrote: `JSON.stringify`
 * with every object's keys sorted, as the replacer it replaced gave it. Spec hashes recorded in
 * state DBs depend on these bytes, so any difference is a change of every recorded hash.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { canonicalJson, hashConfig } from '../../../src/reconcile/core/resource.js';

/** The earlier implementation, kept here as the reference. */
function reference(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v as Record<string, unknown>).sort()) {
        const item = (v as Record<string, unknown>)[key];
        if (item !== undefined) out[key] = item;
      }
      return out;
    }
    return v;
  });
}

describe('canonicalJson', () => {
  it('equals the sorted-key JSON.stringify on arbitrary JSON-like values (undefined members, nested arrays, index-like keys)', () => {
    const value = fc.letrec((tie) => ({
      leaf: fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(undefined)),
      node: fc.oneof({ depthSize: 'small' }, tie('leaf'), fc.array(tie('node'), { maxLength: 5 }),
        fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.nat().map(String), fc.constantFrom('4294967294', '4294967295', '01', '-1', '1.5')), tie('node'), { maxKeys: 6 })),
    })).node;
    fc.assert(fc.property(value, (v) => {
      expect(canonicalJson(v)).toBe(reference(v));
    }), { numRuns: 2000 });
  });

  it('keeps what JSON.stringify does with the odd values: NaN, -0, Infinity, Dates, functions, symbols, holes, Maps', () => {
    const odd = {
      z: Number.NaN, y: -0, x: Infinity, w: new Date(0), v: () => 1, u: Symbol('s'), t: [undefined, () => 1, Symbol('s'), , 1], // eslint-disable-line no-sparse-arrays
      s: new Map([[1, 2]]), r: { b: undefined, a: [{ d: 1, c: 2 }] }, 'é': 'ü', '10': 1, '9': 2, q: new Number(3), p: new String('x'), o: new Boolean(false),
    };
    expect(canonicalJson(odd)).toBe(reference(odd));
    expect(canonicalJson([odd, [odd]])).toBe(reference([odd, [odd]]));
    expect(canonicalJson('a"b')).toBe(reference('a"b'));
    expect(() => canonicalJson({ a: 1n })).toThrow(TypeError);
  });

  it('hashes a known config to the hash recorded by earlier versions', () => {
    // Computed with the replacer implementation: a change here changes every recorded specHash.
    expect(hashConfig({ pool: 'p', volName: 'v.qcow2', capacityBytes: 1048576, format: 'qcow2', backingVolume: undefined }))
      .toBe(createHashOfReference({ pool: 'p', volName: 'v.qcow2', capacityBytes: 1048576, format: 'qcow2', backingVolume: undefined }));
  });
});

function createHashOfReference(v: unknown): string {
  return createHash('sha256').update(reference(v)).digest('hex').slice(0, 16);
}
