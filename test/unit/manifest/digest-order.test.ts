/**
 * `digestManifests` sorts by one precomputed string per manifest (issue 22: the comparator reading
 * both manifests' fields was ~8 ms of a 2,002-manifest watch step): the digest must stay the value
 * it always was (revisions record it; a watch compares it), i.e. the sha256 of the canonical texts
 * sorted by kind, then name, joined in one JSON array.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { digestManifests } from '../../../src/manifest/index.js';
import type { AnyManifest } from '../../../src/manifest/index.js';

/** The digest as it was computed before (src/manifest/loader.ts at main a975c04), canonical text included. */
function previousDigest(manifests: AnyManifest[]): string {
  const canonical = (value: unknown): string => {
    if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
    if (value !== null && typeof value === 'object') {
      const o = value as Record<string, unknown>;
      return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
    }
    return JSON.stringify(value) ?? 'null';
  };
  const sorted = [...manifests]
    .sort((a, b) => (a.kind === b.kind ? (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0) : a.kind < b.kind ? -1 : 1));
  const text = `[${sorted.map((m) => canonical({ apiVersion: m.apiVersion, kind: m.kind, metadata: m.metadata, spec: m.spec })).join(',')}]`;
  return createHash('sha256').update(text).digest('hex');
}

const m = (kind: string, name: string, spec: Record<string, unknown> = {}): AnyManifest =>
  ({ apiVersion: 'virtform.dev/v1', kind, metadata: { name }, spec } as unknown as AnyManifest);

describe('digestManifests', () => {
  it('equals the previous formula, whatever the input order (names sharing prefixes, kinds sharing prefixes, non-ASCII)', () => {
    const set = [
      m('VirtualMachine', 'web-10', { memory: '1GiB' }), m('VirtualMachine', 'web-1'), m('VirtualMachine', 'web'),
      m('Volume', 'web'), m('Volume', 'web-disk', { capacity: '1GiB', pool: 'p' }), m('StoragePool', 'p', { path: '/x' }),
      m('Network', 'n'), m('Network', 'N'), m('Network', 'n-é'), m('VirtualMachine', 'Web'), m('Volume', 'a.b'),
    ];
    let seed = 7;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 20; round++) {
      const shuffled = [...set].sort(() => rand() - 0.5);
      expect(digestManifests(shuffled)).toBe(previousDigest(shuffled));
    }
    expect(digestManifests([])).toBe(previousDigest([]));
    expect(digestManifests([set[0]!])).toBe(previousDigest([set[0]!]));
  });

  it('changes when one manifest changes', () => {
    const a = [m('Network', 'n', { cidr: '10.0.0.0/24' }), m('VirtualMachine', 'v')];
    const b = [m('Network', 'n', { cidr: '10.0.1.0/24' }), m('VirtualMachine', 'v')];
    expect(digestManifests(a)).not.toBe(digestManifests(b));
  });
});
