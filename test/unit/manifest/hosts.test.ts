/**
 * `kind: Host` manifests and the fields placing the other kinds on hosts (issue 21): what loads,
 * what it normalizes to, and every error at its file:line:col.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatManifestError, libvirtUriProblem, loadManifests, type DesiredState, type LoadResult, type ManifestError } from '../../../src/manifest/index.js';
import { hostRemovalConflicts, matchesSelector, selectHosts } from '../../../src/model/hosts.js';
import { resourceRef } from '../../../src/model/kinds.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const H = 'apiVersion: virtform.dev/v1\n';
const host = (name: string, spec: string, labels = ''): string => `${H}kind: Host\nmetadata: {name: ${name}${labels ? `, labels: {${labels}}` : ''}}\nspec:\n${spec}`;
const POOL = (extra = ''): string => `${H}kind: StoragePool\nmetadata: {name: p}\nspec:\n  path: /srv/pools/p\n${extra}`;
const NET = (extra = ''): string => `${H}kind: Network\nmetadata: {name: n}\nspec:\n  mode: isolated\n  cidr: 10.9.0.0/24\n${extra}`;
const VOL = (name: string, extra = ''): string => `${H}kind: Volume\nmetadata: {name: ${name}}\nspec:\n  pool: p\n  capacity: 1GiB\n${extra}`;
const VM = (name: string, disks: string[], extra = '', labels = ''): string =>
  `${H}kind: VirtualMachine\nmetadata: {name: ${name}${labels ? `, labels: {${labels}}` : ''}}\nspec:\n  vcpus: 2\n  memory: 256MiB\n  disks: [${disks.map((d) => `{volume: ${d}}`).join(', ')}]\n  nics: [{network: n}]\n${extra}`;
const TWO_HOSTS = `${host('h1', '  uri: qemu+tcp://10.251.1.2/system\n  insecure: true\n', 'zone: a')}---\n${host('h2', '  uri: qemu+ssh://root@h2.example/system\n', 'zone: b')}`;

const dirs: string[] = [];
function tmp(files: Record<string, string>): string {
  const dir = makeTempDir('vf-hosts-');
  dirs.push(dir);
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function ok(r: LoadResult): DesiredState {
  if (!r.ok) throw new Error(r.errors.map(formatManifestError).join('\n'));
  return r.desired;
}
async function errorsOf(files: Record<string, string>): Promise<ManifestError[]> {
  const r = await loadManifests(tmp(files));
  if (r.ok) throw new Error('expected errors, loaded fine');
  return r.errors;
}
const lines = (errs: ManifestError[]): string[] => { const o = errs.map((e) => formatManifestError(e).replaceAll(/\/[^ :]*\/vf-hosts-[^/]+\//g, '')); return o; };

describe('kind: Host', () => {
  it('normalizes: labels, defaults, sizes in bytes, sorted by name; not a resource manifest', async () => {
    const d = ok(await loadManifests(tmp({
      'pool.yaml': POOL(),
      'hosts.yaml': `${host('zz', '  uri: qemu:///system\n')}---\n${host('aa', [
        '  uri: qemu+tls://a.example/system',
        '  schedulable: false',
        '  drain: true',
        '  capacity: {memory: 8GiB, vcpus: 4, disk: {p: 100GiB}}',
        '  reserved: {memory: 512MiB, vcpus: 1}',
        '  overcommit: {cpu: 4, memory: 1.5}',
        '  domainType: qemu',
      ].join('\n') + '\n', 'zone: a, rack: r1')}`,
    })));
    expect(d.manifests.map((m) => m.kind)).toEqual(['StoragePool']);
    expect(d.hosts.map((h) => h.id)).toEqual(['aa', 'zz']);
    expect(d.hosts[0]).toMatchObject({
      id: 'aa', uri: 'qemu+tls://a.example/system', labels: { zone: 'a', rack: 'r1' }, schedulable: false, drain: true,
      capacity: { memory: 8 * 1024 ** 3, vcpus: 4, disk: { p: 100 * 1024 ** 3 } }, reserved: { memory: 512 * 1024 ** 2, vcpus: 1 },
      overcommit: { cpu: 4, memory: 1.5 }, insecure: false, domainType: 'qemu', source: { line: 7, col: 1 },
    });
    expect(d.hosts[1]).toEqual({
      id: 'zz', uri: 'qemu:///system', labels: {}, schedulable: true, drain: false, reserved: { memory: 0, vcpus: 0 },
      overcommit: { cpu: 1, memory: 1 }, insecure: false, source: expect.objectContaining({ line: 1, col: 1 }),
    });
  });

  it('a Host changes the digest; without one the digest is what it always was', async () => {
    const base = { 'a.yaml': `${POOL()}` };
    const without = ok(await loadManifests(tmp(base)));
    const withHost = ok(await loadManifests(tmp({ ...base, 'h.yaml': host('h1', '  uri: qemu:///system\n') })));
    const other = ok(await loadManifests(tmp({ ...base, 'h.yaml': host('h1', '  uri: qemu:///system\n  drain: true\n') })));
    expect(without.hosts).toEqual([]);
    expect(withHost.digest).not.toBe(without.digest);
    expect(other.digest).not.toBe(withHost.digest);
    const { digestManifests } = await import('../../../src/manifest/index.js');
    expect(without.digest).toBe(digestManifests(without.manifests));
  });

  it('a git checkout\'s state rebased to another folder keeps its Hosts and its digest', async () => {
    const dir = tmp({ 'a.yaml': POOL(), 'h.yaml': host('h1', '  uri: qemu:///system\n') });
    const d = ok(await loadManifests(dir));
    const { rebaseState } = await import('../../../src/git/index.js');
    const moved = rebaseState(d, dir, '/elsewhere');
    expect(moved.hosts.map((h) => [h.id, h.source?.file])).toEqual([['h1', '/elsewhere/h.yaml']]);
    expect(moved.digest).toBe(d.digest);
  });

  it('every bad field at its file:line:col', async () => {
    const errs = await errorsOf({
      'h.yaml': [
        host('a', '  uri: not-a-uri\n'),
        host('b', '  uri: qemu+tcp:///system\n  overcommit: {cpu: 0, memory: -1}\n'),
        host('c', '  uri: qemu+carrier-pigeon://x/system\n  capacity: {memory: 12 parsecs}\n  domainType: xen\n'),
        host('a', '  uri: qemu:///system\n'),
        host('d', '  uri: qemu:///system\n  reserved: {memory: 1.5B}\n'),
      ].join('---\n'),
    });
    expect(lines(errs)).toEqual([
      'h.yaml:5:8: Host/a: spec.uri: "not-a-uri" is not a libvirt URI (expected e.g. qemu:///system, qemu+ssh://user@host/system, qemu+tls://host/system)',
      'h.yaml:11:8: Host/b: spec.uri: "qemu+tcp:///system" has no host name: transport tcp needs one',
      'h.yaml:12:21: Host/b: spec.overcommit.cpu: must be > 0, got 0',
      'h.yaml:12:32: Host/b: spec.overcommit.memory: must be > 0, got -1',
      'h.yaml:18:8: Host/c: spec.uri: "qemu+carrier-pigeon://x/system" names an unknown transport "carrier-pigeon" (expected one of unix, tcp, ssh, tls, libssh, libssh2, ext)',
      'h.yaml:19:22: Host/c: spec.capacity.memory: must be a size such as 10GiB, 512MiB, 1G or a byte count, got "12 parsecs"',
      'h.yaml:20:15: Host/c: spec.domainType: must be one of auto, kvm, qemu, got "xen"',
      'h.yaml:24:18: Host/a: metadata.name: duplicate Host name "a" (first defined at h.yaml:1)',
      'h.yaml:32:8: Host/d: spec.uri: URI "qemu:///system" is already the URI of Host "a" (h.yaml:22): one Host per libvirt host',
      'h.yaml:33:22: Host/d: spec.reserved.memory: size "1.5B" is not a whole number of bytes',
    ]);
  });

  it('two Hosts with the same URI', async () => {
    const errs = await errorsOf({ 'h.yaml': `${host('a', '  uri: qemu:///system\n')}---\n${host('b', '  uri: qemu:///system\n')}` });
    expect(lines(errs)).toEqual(['h.yaml:11:8: Host/b: spec.uri: URI "qemu:///system" is already the URI of Host "a" (h.yaml:1): one Host per libvirt host']);
  });

  it('libvirt URIs', () => {
    for (const u of ['qemu:///system', 'qemu+tcp://10.0.0.1:16509/system', 'qemu+ssh://root@h/system?keyfile=/k', 'qemu+tls://h.example/system', 'test:///default', 'qemu+tcp://[::1]/system']) {
      expect(libvirtUriProblem(u), u).toBeUndefined();
    }
    for (const u of ['qemu://', 'qemu+tcp://h:0/system', 'qemu+tcp://h:99999/system', 'http//x', 'qemu+ssh:///system', '/var/run/libvirt/libvirt-sock']) {
      expect(libvirtUriProblem(u), u).toBeDefined();
    }
  });
});

describe('fleet fields of the other kinds', () => {
  it('without Host manifests every host field is an error, at the field', async () => {
    const errs = await errorsOf({
      'a.yaml': [POOL('  hosts: [h1]\n'), NET('  hostSelector: {matchLabels: {zone: a}}\n'), VOL('v', '  host: h1\n'), VOL('d'),
        VM('vm', ['d'], '  host: h1\n  placement: {spreadBy: {hostLabel: zone}}\n')].join('---\n'),
    });
    expect(lines(errs)).toEqual([
      'a.yaml:6:11: StoragePool/p: spec.hosts[0]: names host "h1" but no Host manifest declares one (without Host manifests virtform manages the one host of --uri)',
      'a.yaml:14:17: Network/n: spec.hostSelector: selects hosts but no Host manifest declares one (without Host manifests virtform manages the one host of --uri)',
      'a.yaml:22:9: Volume/v: spec.host: names host "h1" but no Host manifest declares one (without Host manifests virtform manages the one host of --uri)',
      'a.yaml:39:9: VirtualMachine/vm: spec.host: names host "h1" but no Host manifest declares one (without Host manifests virtform manages the one host of --uri)',
      'a.yaml:40:14: VirtualMachine/vm: spec.placement: has a placement but no Host manifest declares one (without Host manifests virtform manages the one host of --uri)',
    ]);
  });

  it('loads a fleet: pins, placement with defaults, scopes', async () => {
    const d = ok(await loadManifests(tmp({
      'hosts.yaml': TWO_HOSTS,
      'a.yaml': [POOL('  hosts: all\n'), NET('  hostSelector: {matchLabels: {zone: a}}\n'), VOL('d1'), VOL('d2'), VOL('spare', '  host: h2\n'),
        VM('a', ['d1'], '  host: h1\n'), VM('b', ['d2'], '  placement:\n    hostSelector: {matchLabels: {zone: a}}\n    spreadBy: {hostLabel: zone, vmLabel: app}\n', 'app: web')].join('---\n'),
    })));
    expect(d.hosts.map((h) => h.id)).toEqual(['h1', 'h2']);
    expect(d.vms[1]!.spec.placement).toEqual({ hostSelector: { matchLabels: { zone: 'a' } }, spreadBy: { hostLabel: 'zone', vmLabel: 'app', maxSkew: 1, whenUnsatisfiable: 'DoNotSchedule' } });
    expect(d.volumes[2]!.spec.host).toBe('h2');
  });

  it('with Hosts: unknown hosts, both hosts and hostSelector, an unused volume without host, a used volume with one', async () => {
    const errs = await errorsOf({
      'hosts.yaml': TWO_HOSTS,
      'a.yaml': [POOL('  hosts: [h1, h9]\n  hostSelector: {}\n'), NET(), VOL('orphan'), VOL('d', '  host: h2\n'), VOL('x', '  host: h7\n'),
        VM('vm', ['d'], '  host: nowhere\n')].join('---\n'),
    });
    expect(lines(errs)).toEqual([
      'a.yaml:6:15: StoragePool/p: spec.hosts[1]: Host "h9" is not defined',
      'a.yaml:7:17: StoragePool/p: spec.hostSelector: hosts and hostSelector are mutually exclusive',
      'a.yaml:20:3: Volume/orphan: spec: no VirtualMachine uses this volume, so it has no host: set spec.host (a volume lives with the VM using it, or on spec.host)',
      'a.yaml:29:9: Volume/d: spec.host: the volume lives with VirtualMachine "vm", which uses it: pin the VM (its spec.host) instead',
      'a.yaml:37:9: Volume/x: spec.host: Host "h7" is not defined',
      'a.yaml:47:9: VirtualMachine/vm: spec.host: Host "nowhere" is not defined',
    ]);
  });

  it('a backing volume is reached through its clones; an unused base needs a host', async () => {
    const files = {
      'hosts.yaml': TWO_HOSTS,
      'a.yaml': [POOL(), NET(), VOL('base'), VOL('clone', '  backingVolume: base\n'), VM('vm', ['clone'])].join('---\n'),
    };
    ok(await loadManifests(tmp(files)));
    const errs = await errorsOf({ ...files, 'b.yaml': VOL('base2') });
    expect(lines(errs)).toEqual([expect.stringMatching(/^b\.yaml:5:3: Volume\/base2: spec: no VirtualMachine uses this volume/)]);
  });

  it('VMs sharing a volume with different pins', async () => {
    const errs = await errorsOf({
      'hosts.yaml': TWO_HOSTS,
      'a.yaml': [POOL(), NET(), VOL('d1'), VOL('d2'), `${H}kind: Volume\nmetadata: {name: k}\nspec: {pool: p, capacity: 1MiB, format: raw}\n`,
        VM('a', ['d1'], '  host: h1\n  boot: {kernelVolume: k}\n'), VM('b', ['d2'], '  host: h2\n  boot: {kernelVolume: k}\n')].join('---\n'),
    });
    expect(lines(errs)).toEqual(['a.yaml:52:9: VirtualMachine/b: spec.host: pinned to host "h2" but VirtualMachine "a" is pinned to "h1" (a.yaml:33); VMs sharing a volume ("k") are placed together']);
  });

  it('a pinned VM whose pool or network is not on its host; a volume on a host without its pool', async () => {
    const errs = await errorsOf({
      'hosts.yaml': TWO_HOSTS,
      'a.yaml': [POOL('  hostSelector: {matchLabels: {zone: a}}\n'), NET('  hosts: [h1]\n'), VOL('d'), VOL('s', '  host: h2\n'),
        VM('vm', ['d'], '  host: h2\n')].join('---\n'),
    });
    expect(lines(errs)).toEqual([
      'a.yaml:29:9: Volume/s: spec.host: its StoragePool "p" is not on host "h2" (see the pool\'s spec.hosts/hostSelector)',
      'a.yaml:39:9: VirtualMachine/vm: spec.host: pinned to host "h2", where its NIC needs Network "n", which is not on that host (see the Network\'s spec.hosts/hostSelector)',
      'a.yaml:39:9: VirtualMachine/vm: spec.host: pinned to host "h2", where its volume "d" needs StoragePool "p", which is not on that host (see the StoragePool\'s spec.hosts/hostSelector)',
    ]);
  });

  it('a Host\'s capacity.disk names a pool on that host; spreadBy.vmLabel is a label of the VM', async () => {
    const errs = await errorsOf({
      'hosts.yaml': `${host('h1', '  uri: qemu:///system\n  capacity: {disk: {p: 1GiB, nope: 1GiB}}\n')}---\n${host('h2', '  uri: qemu+tcp://h2/system\n  capacity: {disk: {p: 1GiB}}\n')}`,
      'a.yaml': [POOL('  hosts: [h1]\n'), NET(), VOL('d'), VM('vm', ['d'], '  placement: {spreadBy: {hostLabel: zone, vmLabel: app}}\n')].join('---\n'),
    });
    expect(lines(errs)).toEqual([
      'a.yaml:30:52: VirtualMachine/vm: spec.placement.spreadBy.vmLabel: the VM has no label "app" (metadata.labels): it is spread with the VMs sharing that label\'s value',
      'hosts.yaml:6:30: Host/h1: spec.capacity.disk.nope: StoragePool "nope" is not defined',
      'hosts.yaml:13:21: Host/h2: spec.capacity.disk.p: StoragePool "p" is not on this host (see its spec.hosts/hostSelector)',
    ]);
  });

  it('spreadBy: maxSkew at least 1, whenUnsatisfiable one of two, hostLabel required', async () => {
    const errs = await errorsOf({
      'hosts.yaml': TWO_HOSTS,
      'a.yaml': [POOL(), NET(), VOL('d'), VM('vm', ['d'], '  placement: {spreadBy: {vmLabel: app, maxSkew: 0, whenUnsatisfiable: Sometimes}}\n')].join('---\n'),
    });
    expect(lines(errs).map((l) => l.replace(/^a\.yaml:\d+:\d+: /, ''))).toEqual([
      'VirtualMachine/vm: spec.placement.spreadBy.hostLabel: missing required field "hostLabel"',
      'VirtualMachine/vm: spec.placement.spreadBy.maxSkew: must be >= 1, got 0',
      'VirtualMachine/vm: spec.placement.spreadBy.whenUnsatisfiable: must be one of DoNotSchedule, ScheduleAnyway, got "Sometimes"',
    ]);
  });
});

describe('selectors and removal conflicts', () => {
  const hosts = [{ id: 'a', labels: { zone: 'x', ssd: 'yes' } }, { id: 'b', labels: { zone: 'y' } }] as unknown as Parameters<typeof selectHosts>[0];
  it('matchLabels: every label, exact value; empty selects all', () => {
    expect(matchesSelector({ zone: 'x' }, undefined)).toBe(true);
    expect(matchesSelector({ zone: 'x' }, {})).toBe(true);
    expect(matchesSelector({ zone: 'x' }, { matchLabels: { zone: 'x', ssd: 'yes' } })).toBe(false);
    expect(matchesSelector({ toString: 'x' }, { matchLabels: { constructor: 'x' } })).toBe(false);
    expect(selectHosts(hosts, { hostSelector: { matchLabels: { zone: 'x' } } })).toEqual(['a']);
    expect(selectHosts(hosts, { hosts: ['b', 'zz'] })).toEqual(['b']);
    expect(selectHosts(hosts, { hosts: 'all' })).toEqual(['a', 'b']);
    expect(selectHosts(hosts, undefined)).toEqual(['a', 'b']);
  });

  it('a host with owned records and no Host manifest is a conflict naming them; none without Hosts', () => {
    const recs = [resourceRef('VirtualMachine', 'w2', 'gone'), resourceRef('Volume', 'd', 'gone'), resourceRef('Network', 'n', 'a'), resourceRef('Network', 'n')];
    expect(hostRemovalConflicts(recs, [])).toEqual([]);
    const c = hostRemovalConflicts(recs, [{ id: 'a' }]);
    expect(c.map((x) => [x.host, x.objects.map((o) => `${o.kind}/${o.name}`)])).toEqual([
      ['gone', ['VirtualMachine/w2', 'Volume/d']],
      ['local', ['Network/n']],
    ]);
    expect(c[0]!.message).toContain('Host gone has no manifest any more, but virtform owns 2 object(s) on it (VirtualMachine/w2, Volume/d): drain it first (put its Host manifest back with spec.drain: true) or delete them');
    expect(c[1]!.message).toContain('no Host manifest has that host\'s libvirt identity');
    expect(hostRemovalConflicts(recs, [{ id: 'a' }, { id: 'gone' }, { id: 'local' }])).toEqual([]);
    const many = Array.from({ length: 12 }, (_, i) => resourceRef('Volume', `v${String(i).padStart(2, '0')}`, 'gone'));
    expect(hostRemovalConflicts(many, [{ id: 'a' }])[0]!.message).toContain('v09 and 2 more');
  });
});
