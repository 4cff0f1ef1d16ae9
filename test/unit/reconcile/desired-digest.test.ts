/**
 * The desired state's digest (of every manifest file) is computed when first read: building the
 * desired resources does not read it (a dry-run never does; ~45 ms at 2,002 resources without the
 * load cache, issue 22), and a run that records it gets the load's value.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifests } from '../../../src/manifest/index.js';
import { buildDesired } from '../../../src/reconcile/desired.js';

const dir = mkdtempSync(join(tmpdir(), 'vftest-desired-digest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('buildDesired and the digest', () => {
  it('reads the load digest only when asked, and then the same value', async () => {
    writeFileSync(join(dir, 'net.yaml'), 'apiVersion: virtform.dev/v1\nkind: Network\nmetadata: {name: vftest-dd-net}\nspec: {mode: isolated, cidr: 10.238.0.0/24}\n');
    const r = await loadManifests(dir);
    if (!r.ok) throw new Error('the manifests do not load');
    let reads = 0;
    const state = Object.create(r.desired, {
      digest: { get: () => (reads++, r.desired.digest) },
    }) as typeof r.desired;
    const desired = buildDesired(state);
    expect(desired.resources.map((x) => x.key)).toEqual(['Network/vftest-dd-net']);
    expect(reads).toBe(0);
    expect(desired.digest).toBe(r.desired.digest);
    expect(desired.digest).toMatch(/^[0-9a-f]{16,}$/);
    expect(reads).toBeGreaterThan(0);
  });
});
