/** A watch running on one host (or --git) refuses Host manifests that show up, like invalid manifests (nothing applied). */
import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { ManifestState } from '../../../src/watch/manifests.js';
import { WatchMetrics } from '../../../src/watch/metrics.js';
import { tempDir, writeManifests } from '../../support/manifests.js';
import { scenario } from '../../support/scenario.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('watch with Host manifests', () => {
  it('refuses the folder, naming the Hosts, and keeps no desired state to apply', async () => {
    const dir = tempDir('vftest-fleetrun-');
    dirs.push(dir);
    const host = 'apiVersion: virtform.dev/v1\nkind: Host\nmetadata: {name: h1}\nspec: {uri: "qemu:///system"}\n';
    writeManifests(dir, { ...scenario().pool('w-pool', { path: '/srv/pools/w-pool' }).files(), 'hosts.yaml': host });
    const m = new ManifestState(dir, { metrics: new WatchMetrics() });
    expect(await m.load()).toEqual({ ok: false });
    expect(m.errors.join('\n')).toMatch(/declares Host manifests \(h1\).*restart `virtform watch DIR` to run the fleet/);
    expect(m.lastGood).toBeUndefined();
  });
});
