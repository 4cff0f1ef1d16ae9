/** The policy file: loading (errors with positions), the field table, roots with symlinks resolved, URL hosts, limits. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, writeManifests } from '../../support/manifests.js';
import { POLICY_FIELDS, checkPolicy, loadManifests, loadPolicy, formatManifestError, type Policy } from '../../../src/manifest/index.js';
import { realPathOf } from '../../../src/manifest/policy.js';

let work: string;
beforeEach(() => {
  work = tempDir();
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

async function policy(text: string): Promise<Policy> {
  const f = join(work, 'policy.yaml');
  writeFileSync(f, text);
  const r = await loadPolicy(f);
  if (!r.ok) throw new Error(r.errors.map(formatManifestError).join('\n'));
  return r.policy!;
}

async function errorsOf(files: Record<string, string>, p: Policy): Promise<string[]> {
  const dir = writeManifests(join(work, 'm'), files);
  const r = await loadManifests(dir, { policy: p });
  return r.ok ? [] : r.errors.map(formatManifestError);
}

const pool = (name: string, path: string): string => `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${name}}
spec: {path: ${path}}
`;

describe('policy file', () => {
  it('no --policy and no default file: no policy', async () => {
    expect(await loadPolicy(undefined, join(work, 'absent.yaml'))).toEqual({ ok: true, policy: undefined });
  });

  it('a missing --policy file, YAML errors, schema errors and bad sizes are errors with file:line:col and field', async () => {
    const missing = await loadPolicy(join(work, 'nope.yaml'));
    expect(missing.ok).toBe(false);
    const f = join(work, 'bad.yaml');
    writeFileSync(f, 'apiVersion: virtform.dev/v1\nkind: Policy\nallowedRoots:\n  poolPaths: [relative/dir]\n  bogus: []\nlimits: {vm: {memory: lots}}\n');
    const r = await loadPolicy(f);
    expect(r.ok).toBe(false);
    const text = !r.ok ? r.errors.map(formatManifestError) : [];
    expect(text.some((t) => t.startsWith(`${f}:4:15: Policy: allowedRoots.poolPaths.0: must be an absolute directory path`))).toBe(true);
    expect(text.some((t) => t.startsWith(`${f}:5:3: Policy: allowedRoots.bogus: unknown field "bogus"`))).toBe(true);
    expect(text.some((t) => t.includes('limits.vm.memory'))).toBe(true);
    writeFileSync(f, 'apiVersion: virtform.dev/v1\nkind: Policy\nurlHosts: [a\n');
    expect((await loadPolicy(f)).ok).toBe(false);
  });

  it('the field table covers every path category and urlHosts', () => {
    const cats = new Set(POLICY_FIELDS.map((f) => f.category));
    for (const c of ['poolPaths', 'imageSources', 'cloudInitFiles', 'bootFiles', 'urlHosts']) expect(cats.has(c as never)).toBe(true);
  });
});

describe('allowed roots', () => {
  it('a pool in /etc is invalid at its spec.path; one under a root is fine', async () => {
    const p = await policy(`apiVersion: virtform.dev/v1\nkind: Policy\nallowedRoots: {poolPaths: [${work}/pools]}\n`);
    const errs = await errorsOf({ 'a.yaml': pool('vftest-safety-a', '/etc/vftest') + '---\n' + pool('vftest-safety-b', `${work}/pools/b`) }, p);
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatch(/a\.yaml:4:\d+: StoragePool\/vftest-safety-a: spec\.path: pool path "\/etc\/vftest" is outside the allowed roots: allowedRoots\.poolPaths allows .*\/pools \(policy /);
  });

  it('symlinks are resolved before the check (a link under the root pointing outside is refused)', async () => {
    mkdirSync(join(work, 'images'));
    symlinkSync('/etc', join(work, 'images', 'etc-link'));
    const p = await policy(`apiVersion: virtform.dev/v1\nkind: Policy\nallowedRoots: {imageSources: [${work}/images], poolPaths: [${work}/pools]}\n`);
    const vol = `apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: vftest-safety-v}
spec: {pool: vftest-safety-p, capacity: 1MiB, source: ${work}/images/etc-link/shadow}
`;
    const errs = await errorsOf({ 'a.yaml': `${pool('vftest-safety-p', `${work}/pools/p`)}---\n${vol}` }, p);
    expect(errs).toHaveLength(1);
    expect(errs[0]).toContain('spec.source: image source');
    expect(errs[0]).toContain('(resolves to "/etc/shadow")');
    expect(realPathOf(`${work}/images/etc-link/not/there`)).toBe('/etc/not/there');
  });

  it('a refused source is never opened: only the policy error, not "does not exist"/"cannot be read"', async () => {
    const p = await policy(`apiVersion: virtform.dev/v1\nkind: Policy\nallowedRoots: {imageSources: [${work}/images]}\n`);
    const vol = `apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: vftest-safety-v}
spec: {pool: vftest-safety-p, capacity: 1MiB, source: /etc/shadow}
`;
    const errs = await errorsOf({ 'a.yaml': `${pool('vftest-safety-p', `${work}/p`)}---\n${vol}` }, p);
    expect(errs).toEqual([expect.stringContaining('image source "/etc/shadow" is outside the allowed roots')]);
  });

  it('cloud-init user-data files, boot kernel/initrd paths and image URLs of real manifests are checked', async () => {
    mkdirSync(join(work, 'ci'));
    writeFileSync(join(work, 'ci', 'ok.yaml'), '#cloud-config\n');
    symlinkSync('/etc/shadow', join(work, 'ci', 'shadow-link'));
    const p = await policy(`apiVersion: virtform.dev/v1\nkind: Policy\nallowedRoots: {cloudInitFiles: [${work}/ci], bootFiles: [${work}/boot], poolPaths: [${work}/pools]}\nurlHosts: [images.example.org]\n`);
    const vm = (name: string, extra: string): string => `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${name}}
spec:
  vcpus: 1
  memory: 64MiB
  disks: []
${extra}`;
    const files = {
      'a.yaml': `${pool('vftest-safety-p', `${work}/pools/p`)}---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: vftest-safety-d}
spec: {pool: vftest-safety-p, capacity: 1MiB, format: raw}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: vftest-safety-u}
spec: {pool: vftest-safety-p, format: raw, source: {url: "http://evil.example.com/x.img", sha256: "${'a'.repeat(64)}"}}
---
${vm('vftest-safety-ok', `  cloudInit: {pool: vftest-safety-p, userDataFile: ${work}/ci/ok.yaml}\n`)}---
${vm('vftest-safety-ud', `  cloudInit: {pool: vftest-safety-p, userDataFile: ${work}/ci/shadow-link}\n`)}---
${vm('vftest-safety-k', '  boot: {kernel: /boot/vmlinuz, initrd: /boot/initrd.img}\n')}`,
    };
    const errs = await errorsOf(files, p);
    expect(errs.some((e) => /VirtualMachine\/vftest-safety-ud: spec\.cloudInit\.userDataFile: .*outside the allowed roots/.test(e) && e.includes('(resolves to "/etc/shadow")'))).toBe(true);
    expect(errs.some((e) => /VirtualMachine\/vftest-safety-k: spec\.boot\.kernel: .*outside the allowed roots/.test(e))).toBe(true);
    expect(errs.some((e) => /VirtualMachine\/vftest-safety-k: spec\.boot\.initrd: .*outside the allowed roots/.test(e))).toBe(true);
    expect(errs.some((e) => /Volume\/vftest-safety-u: spec\.source\.url: .*evil\.example\.com/.test(e))).toBe(true);
    expect(errs.filter((e) => e.includes('vftest-safety-ok'))).toEqual([]);
  });

  it('an empty list allows nothing; a category left out is not restricted', async () => {
    const p = await policy('apiVersion: virtform.dev/v1\nkind: Policy\nallowedRoots: {poolPaths: []}\n');
    expect(await errorsOf({ 'a.yaml': pool('vftest-safety-a', `${work}/x`) }, p)).toEqual([expect.stringContaining('allows none')]);
    const q = await policy('apiVersion: virtform.dev/v1\nkind: Policy\n');
    expect(await errorsOf({ 'a.yaml': pool('vftest-safety-a', `${work}/x`) }, q)).toEqual([]);
  });
});

describe('URL hosts and limits', () => {
  it('checks URL fields of the table against urlHosts (exact and *.suffix)', () => {
    const p: Policy = { file: 'p.yaml', roots: {}, urlHosts: ['deb.debian.org', '*.example.org'], limits: { host: {}, vm: {} } };
    const entry = (url: string) => ({
      sd: { file: 'm.yaml', start: { line: 1, col: 1 }, doc: { contents: null } } as never,
      kind: 'Volume' as const, name: 'v', valid: true,
      data: { metadata: { name: 'v' }, spec: { pool: 'p', capacity: 1, source: { url } } },
    });
    const out = (url: string) => checkPolicy([entry(url)], p).map((e) => e.message);
    expect(out('https://deb.debian.org/x.qcow2')).toEqual([]);
    expect(out('https://a.example.org/x.qcow2')).toEqual([]);
    expect(out('https://example.org.evil.net/x')[0]).toContain('URL host "example.org.evil.net" is not allowed');
    expect(out('https://evil.net/x')[0]).toContain('urlHosts allows deb.debian.org, *.example.org');
  });

  it('per-VM maximums and host totals', async () => {
    const p = await policy('apiVersion: virtform.dev/v1\nkind: Policy\nlimits: {vm: {vcpus: 2, memory: 256MiB}, host: {vcpus: 3, disk: 40MiB}}\n');
    const vm = (name: string, vcpus: number, memory: string): string => `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${name}}
spec: {vcpus: ${vcpus}, memory: ${memory}}
`;
    const vol = (name: string): string => `apiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: ${name}}\nspec: {pool: vftest-safety-p, capacity: 32MiB}\n`;
    const errs = await errorsOf({
      'a.yaml': [pool('vftest-safety-p', `${work}/p`), vol('vftest-safety-v1'), vol('vftest-safety-v2'),
        vm('vftest-safety-a', 2, '128MiB'), vm('vftest-safety-b', 4, '512MiB')].join('---\n'),
    }, p);
    expect(errs.some((e) => e.includes('VirtualMachine/vftest-safety-b: spec.vcpus: 4 vCPUs exceed the per-VM limit limits.vm.vcpus 2'))).toBe(true);
    expect(errs.some((e) => e.includes('spec.memory: memory 512MiB exceeds the per-VM limit'))).toBe(true);
    expect(errs.some((e) => e.includes('total vCPUs of all VMs (6 with this one) exceed the host limit limits.host.vcpus 3'))).toBe(true);
    expect(errs.some((e) => e.includes('Volume/vftest-safety-v2: spec.capacity: total volume capacity 64MiB exceeds the host limit'))).toBe(true);
  });
});

describe('limits over the size that will exist (no capacity: the image\'s virtual size)', () => {
  it('a local source: checked at load at spec.source; a URL image: from the cache when there, else a budget for the upload', async () => {
    const { execFileSync } = await import('node:child_process');
    mkdirSync(join(work, 'img'));
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(work, 'img', 'big.qcow2'), '64M']);
    const p = await policy('apiVersion: virtform.dev/v1\nkind: Policy\nlimits: {host: {disk: 48MiB}}\n');
    const local = `apiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: vftest-safety-big}\nspec: {pool: vftest-safety-p, source: ${work}/img/big.qcow2}\n`;
    const errs = await errorsOf({ 'a.yaml': [pool('vftest-safety-p', `${work}/p`), local].join('---\n') }, p);
    expect(errs).toEqual([expect.stringMatching(/a\.yaml:\d+:\d+: Volume\/vftest-safety-big: spec\.source: total volume capacity 64MiB \(this one: 64MiB, the image's virtual size\) exceeds the host limit limits\.host\.disk 48MiB/)]);

    const sha = 'a'.repeat(64);
    const url = `apiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: vftest-safety-url}\nspec: {pool: vftest-safety-p, source: {url: "http://127.0.0.1/x", sha256: "${sha}"}}\n`;
    const small = `apiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: vftest-safety-s}\nspec: {pool: vftest-safety-p, capacity: 16MiB}\n`;
    const dir = writeManifests(join(work, 'u'), { 'a.yaml': [pool('vftest-safety-p', `${work}/p`), url, small].join('---\n') });
    const unknown = await loadManifests(dir, { policy: p });
    expect(unknown.ok).toBe(true);
    const v = unknown.ok ? unknown.desired.volumes.find((x) => x.metadata.name === 'vftest-safety-url') : undefined;
    expect(v?.importRules?.maxVirtualSize).toEqual({ bytes: 32 * 1024 ** 2, why: expect.stringContaining('limits.host.disk 48MiB (other volumes: 16MiB)') });
    const cached = await loadManifests(dir, { policy: p, cachedImageSize: async (s) => (s === sha ? 64 * 1024 ** 2 : undefined) });
    expect(cached.ok ? [] : cached.errors.map(formatManifestError)).toEqual([expect.stringMatching(/Volume\/vftest-safety-url: spec\.source: total volume capacity 64MiB \(this one: 64MiB, the image's virtual size\)/)]);
  });

  it('a relative source leading out of a sandbox is never opened', async () => {
    mkdirSync(join(work, 'outside'));
    writeFileSync(join(work, 'outside', 'img.raw'), 'x'.repeat(512));
    const dir = writeManifests(join(work, 'repo', 'm'), {
      'a.yaml': `${pool('vftest-safety-p', `${work}/p`)}---\napiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: vftest-safety-v}\nspec: {pool: vftest-safety-p, format: raw, source: img.raw}\n`,
    });
    symlinkSync(join(work, 'outside', 'img.raw'), join(dir, 'img.raw'));
    expect((await loadManifests(dir)).ok).toBe(true); // the operator's folder: followed
    const r = await loadManifests(dir, { confineTo: join(work, 'repo') });
    expect(r.ok ? [] : r.errors.map(formatManifestError)).toEqual([expect.stringContaining('spec.source: source image "img.raw" resolves outside the repository checkout (a symlink?): not read')]);
  });
});

describe('configs/policy.example.yaml', () => {
  it('loads and uses every field of the schema', async () => {
    const { ROOT } = await import('../../support/real-host.js');
    const r = await loadPolicy(join(ROOT, 'configs/policy.example.yaml'));
    expect(r.ok).toBe(true);
    const p = r.ok ? r.policy! : undefined;
    expect(Object.keys(p!.roots).sort()).toEqual(['bootFiles', 'cloudInitFiles', 'extraDeviceSources', 'imageSources', 'poolPaths']);
    expect(p!.extraDevices).toEqual({ hostElements: ['filesystem'], networkChardevs: false });
    expect(p!.urlHosts).toEqual(['cloud.debian.org', 'deb.debian.org']);
    expect(p!.limits.vm).toEqual({ vcpus: 8, memory: 16 * 1024 ** 3, disk: 500 * 1024 ** 3 });
    expect(Object.keys(p!.limits.host).sort()).toEqual(['disk', 'memory', 'vcpus']);
    expect(p!.confineSymlinks).toBe(true);
  });
});
