/**
 * From one host to a fleet, against the real libvirtd (issue 21): a state DB of the implicit host
 * (`qemu:///system`) gets Host manifests naming the same libvirtd through another URI (TCP on
 * loopback). `hosts.rekey` binds the records to the Host because the libvirt identity is the
 * recorded one, and the fleet run then plans nothing: nothing pruned, nothing recreated, the same
 * UUIDs.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatManifestError, loadManifests, type DesiredState } from '../../../src/manifest/index.js';
import { LOCAL_HOST } from '../../../src/model/kinds.js';
import { openHost } from '../../../src/reconcile/adapters/libvirt-host.js';
import { buildDesired } from '../../../src/reconcile/desired.js';
import { reconcile } from '../../../src/reconcile/engine.js';
import { buildFleetDesired } from '../../../src/reconcile/fleet-desired.js';
import { openStateStore } from '../../../src/state/index.js';
import { writeManifests } from '../../support/manifests.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('fleetbind');
const P = N.base;
/**
 * The same libvirtd over TCP: where libvirtd.conf has `listen_tcp = 1` (the namespace test hosts of
 * scripts/test-host.sh: `listen_addr` is the host's address), else the test is skipped.
 */
function tcpUri(): string | undefined {
  let conf = '';
  try {
    conf = readFileSync('/etc/libvirt/libvirtd.conf', 'utf8');
  } catch { // safe-catch: no readable libvirtd.conf: no TCP listener known
    return undefined;
  }
  if (!/^\s*listen_tcp\s*=\s*1\s*$/m.test(conf)) return undefined;
  const addr = /^\s*listen_addr\s*=\s*"([^"]+)"/m.exec(conf)?.[1];
  return `qemu+tcp://${!addr || addr === '0.0.0.0' ? '127.0.0.1' : addr}/system`;
}
const TCP = tcpUri() ?? '';
let work = '';

beforeAll(() => {
  N.cleanup();
  work = N.tempDir();
});
afterAll(() => {
  N.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
});

const doc = (kind: string, name: string, spec: string): string => `apiVersion: virtform.dev/v1\nkind: ${kind}\nmetadata: {name: ${name}}\nspec: ${spec}\n`;
function resources(host?: string): string[] {
  return [
    doc('StoragePool', `${P}-pool`, `{path: ${N.poolPath()}, autostart: false}`),
    doc('Volume', `${P}-data`, `{pool: ${P}-pool, capacity: 4MiB${host ? `, host: ${host}` : ''}}`),
    doc('Network', `${P}-net`, `{mode: isolated, cidr: ${N.cidr()}, autostart: false}`),
  ];
}
async function load(docs: string[], sub: string): Promise<DesiredState> {
  const r = await loadManifests(writeManifests(join(work, sub), { 'all.yaml': docs.join('---\n') }));
  if (!r.ok) throw new Error(r.errors.map(formatManifestError).join('\n'));
  return r.desired;
}

describe.skipIf(!TCP)('one host to a fleet on the real libvirtd (TCP listener needed)', () => {
  it('the implicit host\'s records are bound to the Host with its identity; the fleet run plans nothing', async () => {
    const store = await openStateStore(join(work, 'state.db'));
    const local = await openHost('qemu:///system');
    const tcp = await openHost(TCP);
    try {
      await store.hosts.bind(await local.hostIdentity(), { record: true });
      const first = await reconcile({ hosts: new Map([[LOCAL_HOST, local]]), store, desired: buildDesired(await load(resources(), 'one')), gracefulStop: false });
      expect(first.outcome).toBe('succeeded');
      const before = (await store.resources.list()).map((r) => [r.kind, r.name, r.uuid]);
      expect(before).toHaveLength(3);

      const fleet = await load([doc('Host', 'h1', `{uri: "${TCP}", insecure: true}`), ...resources('h1')], 'fleet');
      const rk = await store.hosts.rekey(await tcp.hostIdentity(), { to: 'h1' });
      expect(rk).toMatchObject({ status: 'rekeyed', moved: { resources: 3 } });
      const run = await reconcile({ hosts: new Map([['h1', tcp]]), store, desired: buildFleetDesired(fleet, () => undefined), gracefulStop: false });
      expect(run.plan.changes.map((c) => `${c.action} ${c.key}`)).toEqual([]);
      expect(run.mutations).toBe(0);
      const after = await store.resources.list();
      expect(after.map((r) => [r.kind, r.name, r.uuid])).toEqual(before);
      expect(after.every((r) => r.host === 'h1')).toBe(true);
      expect((await store.hosts.list()).map((h) => [h.id, h.uri])).toEqual([['h1', TCP]]);
    } finally {
      await tcp.close();
      await local.close();
      await store.close();
    }
  });
});
