import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatManifestError, loadManifests, type DesiredState, type LoadResult } from '../../../src/manifest/index.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const H = 'apiVersion: virtform.dev/v1\n';
const POOL = `${H}kind: StoragePool\nmetadata: {name: p}\nspec: {path: /srv/pools/p}\n`;
const VOL = `${H}kind: Volume\nmetadata: {name: v}\nspec: {pool: p, capacity: 1GiB}\n`;
const NET = `${H}kind: Network\nmetadata: {name: n}\nspec: {mode: isolated, cidr: 10.9.0.0/24}\n`;
const VM = `${H}kind: VirtualMachine\nmetadata: {name: vm}\nspec:\n  vcpus: 2\n  memory: 256MiB\n  disks: [{volume: v}]\n  nics: [{network: n}]\n`;

const dirs: string[] = [];
function tmp(files: Record<string, string | Buffer> = {}): string {
  const dir = makeTempDir('vf-manifest-');
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

describe('loadManifests', () => {
  it('loads multi-document files recursively, in sorted file order, and fills defaults', async () => {
    const dir = tmp({
      'b/vm.yml': VM,
      'a.yaml': `${POOL}---\n${VOL}`,
      'b/nested/net.yaml': NET,
    });
    const d = ok(await loadManifests(dir));
    expect(d.dir).toBe(dir);
    expect(d.files).toEqual([join(dir, 'a.yaml'), join(dir, 'b/nested/net.yaml'), join(dir, 'b/vm.yml')]);
    expect(d.manifests.map((m) => `${m.kind}/${m.metadata.name}`)).toEqual([
      'StoragePool/p',
      'Volume/v',
      'Network/n',
      'VirtualMachine/vm',
    ]);
    expect(d.pools).toHaveLength(1);
    expect(d.volumes).toHaveLength(1);
    expect(d.networks).toHaveLength(1);
    expect(d.vms).toHaveLength(1);
    expect(d.pools[0]!.spec.autostart).toBe(true);
    expect(d.volumes[0]!.spec.format).toBe('qcow2');
    expect(d.networks[0]!.spec.autostart).toBe(true);
    const vm = d.vms[0]!;
    expect(vm.spec.state).toBe('running');
    expect(vm.spec.autostart).toBe(false);
    expect(vm.spec.disks?.[0]?.bus).toBe('virtio');
    expect(vm.spec.nics?.[0]?.model).toBe('virtio');
    expect(d.volumes[0]!.source).toEqual({ file: join(dir, 'a.yaml'), line: 6, col: 1 });
    expect(vm.apiVersion).toBe('virtform.dev/v1');
  });

  it('ignores dot-directories, dot-files, non-YAML files and empty documents', async () => {
    const dir = tmp({
      'pool.yaml': `---\n# only a comment\n---\n${POOL}---\n`,
      '.git/config.yaml': 'this: [is not valid',
      '.hidden/x.yaml': 'kind: Nope',
      '.swap.yaml': 'kind: Nope',
      'README.md': 'kind: Nope',
      'notes.txt': '{{{',
    });
    const d = ok(await loadManifests(dir));
    expect(d.files).toEqual([join(dir, 'pool.yaml')]);
    expect(d.manifests).toHaveLength(1);
  });

  it('an empty folder is ok with zero manifests; a missing folder is one error', async () => {
    const empty = ok(await loadManifests(tmp()));
    expect(empty.manifests).toEqual([]);
    expect(empty.files).toEqual([]);
    const missing = join(tmp(), 'nope');
    const r = await loadManifests(missing);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toMatchObject({ file: missing, line: 1, col: 1 });
      expect(r.errors[0]!.message).toContain('does not exist');
    }
  });

  it('accepts a single file path', async () => {
    const dir = tmp({ 'one.yaml': POOL });
    const d = ok(await loadManifests(join(dir, 'one.yaml')));
    expect(d.files).toEqual([join(dir, 'one.yaml')]);
    expect(d.pools[0]!.metadata.name).toBe('p');
  });

  it('digest is stable under file order, splitting, whitespace and comments, and changes with content', async () => {
    const a = ok(await loadManifests(tmp({ 'all.yaml': [POOL, VOL, NET, VM].join('---\n') })));
    const b = ok(
      await loadManifests(
        tmp({
          'z.yaml': `# the VM\n${VM.replace('vcpus: 2', 'vcpus:    2   # two')}`,
          'a/net.yaml': `\n\n${NET}`,
          'm.yaml': `${VOL}---\n${POOL.replace('spec: {path: /srv/pools/p}', 'spec:\n  path: /srv/pools/p\n  autostart: true')}`,
        }),
      ),
    );
    expect(a.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(b.digest).toBe(a.digest);
    const c = ok(await loadManifests(tmp({ 'all.yaml': [POOL, VOL, NET, VM.replace('vcpus: 2', 'vcpus: 3')].join('---\n') })));
    expect(c.digest).not.toBe(a.digest);
  });

  it('resolves a relative source against the manifest file directory', async () => {
    const dir = tmp({
      'pool.yaml': POOL,
      'vols/img.yaml': `${H}kind: Volume\nmetadata: {name: img}\nspec: {pool: p, capacity: 1MiB, format: raw, source: ../images/disk.raw}\n`.replace(
        '../images/disk.raw',
        'images/disk.raw',
      ),
      'vols/images/disk.raw': Buffer.alloc(4096),
    });
    const d = ok(await loadManifests(dir));
    expect(d.volumes[0]!.spec.source).toBe(join(dir, 'vols/images/disk.raw'));
  });

  it('keeps an absolute source as is', async () => {
    const dir = tmp({ 'disk.raw': Buffer.alloc(10) });
    writeFileSync(
      join(dir, 'm.yaml'),
      `${POOL}---\n${H}kind: Volume\nmetadata: {name: img}\nspec: {pool: p, capacity: 1MiB, format: raw, source: ${join(dir, 'disk.raw')}}\n`,
    );
    const d = ok(await loadManifests(dir));
    expect(d.volumes[0]!.spec.source).toBe(join(dir, 'disk.raw'));
  });

  it('detects the git commit and dirtiness of the manifest folder', async () => {
    const dir = tmp({ 'm.yaml': POOL });
    const outside = ok(await loadManifests(dir));
    expect(outside.gitCommit).toBeUndefined();
    expect(outside.gitDirty).toBeUndefined();
    const git = (...args: string[]): string =>
      execFileSync('git', ['-c', 'user.email=t@example.invalid', '-c', 'user.name=t', ...args], { cwd: dir, encoding: 'utf8' }).trim();
    git('init', '-q');
    git('add', 'm.yaml');
    git('commit', '-q', '-m', 'init');
    const head = git('rev-parse', 'HEAD');
    const clean = ok(await loadManifests(dir));
    expect(clean.gitCommit).toBe(head);
    expect(clean.gitDirty).toBe(false);
    writeFileSync(join(dir, 'm.yaml'), `${POOL}# edited\n`);
    const dirty = ok(await loadManifests(dir));
    expect(dirty.gitCommit).toBe(head);
    expect(dirty.gitDirty).toBe(true);
  });

  it('reports every error at once, sorted by file, line and column', async () => {
    const dir = tmp({
      'b.yaml': `${H}kind: Volume\nmetadata: {name: v}\nspec: {pool: missing, capacity: 1GiB}\n`,
      'a.yaml': `${H}kind: VirtualMachine\nmetadata: {name: vm}\nspec:\n  vcpus: 100\n  memory: 1MiB\n  disks: [{volume: nope}]\n`,
    });
    const r = await loadManifests(dir);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => `${e.file.slice(dir.length + 1)}:${e.line}:${e.col}:${e.field}`)).toEqual([
      'a.yaml:5:10:spec.vcpus',
      'a.yaml:7:20:spec.disks[0].volume',
      'b.yaml:4:14:spec.pool',
    ]);
    expect(formatManifestError(r.errors[2]!)).toBe(
      `${join(dir, 'b.yaml')}:4:14: Volume/v: spec.pool: StoragePool "missing" is not defined`,
    );
  });
});

describe('formatManifestError', () => {
  it('omits missing parts', () => {
    expect(formatManifestError({ file: 'f.yaml', line: 3, col: 1, kind: 'Volume', name: 'v', field: 'spec.pool', message: 'm' })).toBe(
      'f.yaml:3:1: Volume/v: spec.pool: m',
    );
    expect(formatManifestError({ file: 'f.yaml', line: 3, col: 1, kind: 'Volume', name: 'v', message: 'm' })).toBe('f.yaml:3:1: Volume/v: m');
    expect(formatManifestError({ file: 'f.yaml', line: 3, col: 1, kind: 'Volume', message: 'm' })).toBe('f.yaml:3:1: Volume: m');
    expect(formatManifestError({ file: 'f.yaml', line: 2, col: 5, message: 'YAML: bad' })).toBe('f.yaml:2:5: YAML: bad');
    expect(formatManifestError({ file: 'f.yaml', line: 1, col: 1, field: 'kind', message: 'm' })).toBe('f.yaml:1:1: kind: m');
  });
});
