/**
 * Hostile but VALID values: XML metacharacters and shell metacharacters in free-text fields
 * (VM description, pool path, source image path) must reach libvirt as data, never as markup or
 * shell syntax. Converges on qemu:///system; objects are named vftest-bad-*.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDomainXml } from '../../../src/libvirt/xml/index.js';
import { ensureBuilt, orphans, ROOT, runCli, TEST_POOL_ROOT, virsh } from '../../support/real-host.js';
import { writeManifests } from '../../support/manifests.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('bad');
const P = N.base;
// Payloads in path components cannot contain '/', so they touch relative names: checked in every
// working directory involved (the CLI runs in ROOT, libvirtd and qemu-img in /, and /tmp).
const MARKS = [`${P}-pwned-desc`, `${P}-pwned-pool`, `${P}-pwned-src`];
const PWNED = MARKS.flatMap((m) => [join('/tmp', m), join('/', m), join(ROOT, m)]);
const DESCRIPTION =
  `x</description><devices><disk type='file' device='disk'><source file='/etc/shadow'/><target dev='vdz'/></disk></devices>` +
  `<description>"double" 'single' & &amp; ]]> <!-- c --> <?pi?> $(touch /tmp/${MARKS[0]}) \`id\` ; | >`;
const POOL_PATH = `${TEST_POOL_ROOT}/${P}-pool '"<&> $(touch ${MARKS[1]})`;
const SRC_DIR = `/tmp/${P}-src`;
const SRC = `${SRC_DIR}/img '"<&> $(touch ${MARKS[2]});.raw`;

let work: string | undefined;
let dir: string;
let db: string;

/** YAML double-quoted scalar (JSON strings are valid YAML). */
const q = (s: string): string => JSON.stringify(s);

beforeAll(() => {
  ensureBuilt();
  N.cleanup();
  for (const f of PWNED) rmSync(f, { force: true });
  rmSync(SRC_DIR, { recursive: true, force: true });
  mkdirSync(SRC_DIR, { recursive: true });
  writeFileSync(SRC, Buffer.alloc(1024 * 1024, 0x5a)); // 1 MiB of 'Z'
  const w = N.tempDir();
  work = w;
  db = join(w, 'state.db');
  dir = writeManifests(join(w, 'm'), {
    'all.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: ${q(POOL_PATH)}}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-root}
spec: {pool: ${P}-pool, capacity: 16MiB, format: qcow2}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-imported}
spec: {pool: ${P}-pool, capacity: 2MiB, format: raw, source: ${q(SRC)}}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-xml}
spec:
  vcpus: 1
  memory: 64MiB
  state: stopped
  description: ${q(DESCRIPTION)}
  disks: [{volume: ${P}-root, bus: virtio, boot: 1}, {volume: ${P}-imported}]
  nics: []
`,
  });
});

afterAll(() => {
  N.cleanup();
  rmSync(SRC_DIR, { recursive: true, force: true });
  if (work) rmSync(work, { recursive: true, force: true });
  for (const f of PWNED) rmSync(f, { force: true });
});

describe('hostile values reach libvirt as data', () => {
  it('converges, and a second dry-run has nothing to do', async () => {
    const r = await runCli(['reconcile', dir, '--uri', 'qemu:///system', '--db', db]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const again = await runCli(['reconcile', dir, '--uri', 'qemu:///system', '--db', db, '--dry-run', '--detailed-exitcode']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
  });

  it('the description is text in dumpxml; the domain has exactly the declared disks', () => {
    const xml = virsh('dumpxml', `${P}-xml`);
    expect(xml).toContain('&lt;/description&gt;&lt;devices&gt;');
    expect(xml).not.toContain('/etc/shadow\'/>');
    const parsed = parseDomainXml(xml);
    expect(parsed.description).toBe(DESCRIPTION);
    expect(parsed.disks.map((d) => d.path)).toEqual([join(POOL_PATH, `${P}-root.qcow2`), join(POOL_PATH, `${P}-imported.img`)]);
    expect(parsed.disks.some((d) => d.path.includes('shadow') || d.target === 'vdz')).toBe(false);
    // exactly one <description> element, and one <devices>
    expect(xml.match(/<description>/g)).toHaveLength(1);
    expect(xml.match(/<devices>/g)).toHaveLength(1);
  });

  it('the pool lives at the literal path; the imported volume holds the source bytes', () => {
    expect(existsSync(POOL_PATH)).toBe(true);
    expect(readdirSync(POOL_PATH).sort()).toEqual([`${P}-imported.img`, `${P}-root.qcow2`]);
    const imported = readFileSync(join(POOL_PATH, `${P}-imported.img`));
    expect(imported.subarray(0, 1024 * 1024).every((b) => b === 0x5a)).toBe(true);
    expect(orphans(N.prefix, {
      domains: [`${P}-xml`], networks: [], pools: [`${P}-pool`],
      volumes: [`${P}-pool/${P}-imported.img`, `${P}-pool/${P}-root.qcow2`],
      files: [join(POOL_PATH, `${P}-imported.img`), join(POOL_PATH, `${P}-root.qcow2`)],
    })).toEqual([]);
  });

  it('no $(...) in any value was ever run by a shell', () => {
    for (const f of PWNED) expect(existsSync(f), f).toBe(false);
  });
});

/**
 * Static check: the src tree never hands a string to a shell. No `exec(`/`execSync(`, no
 * `shell: true`, and every execFile/spawn call (incl. promisified aliases) passes an argument array.
 */
export function shellViolations(files: Record<string, string>): string[] {
  const out: string[] = [];
  for (const [file, text] of Object.entries(files)) {
    const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
    if (/(?<![.\w])exec(Sync)?\s*\(/.test(code)) out.push(`${file}: exec()/execSync()`);
    if (/shell\s*:\s*(true|['"`])/.test(code)) out.push(`${file}: shell option`);
    if (/from\s+['"](node:)?child_process['"]/.test(code) && /\bexec(Sync)?\b\s*[,}]/.test(code.match(/import\s*{[^}]*}\s*from\s+['"](node:)?child_process['"]/)?.[0] ?? '')) {
      out.push(`${file}: imports exec/execSync`);
    }
    const aliases = ['execFile', 'execFileSync', 'spawn', 'spawnSync', 'fork'];
    for (const m of code.matchAll(/const\s+(\w+)\s*=\s*promisify\(\s*(execFile|exec)\s*\)/g)) aliases.push(m[1]!);
    for (const name of aliases) {
      for (const m of code.matchAll(new RegExp(`(?<![.\\w])${name}\\s*\\(`, 'g'))) {
        const rest = code.slice(m.index! + m[0].length);
        if (/^\s*(execFile|exec)\s*\)/.test(rest)) continue; // promisify(execFile)
        if (!/^\s*('[^']*'|"[^"]*"|[\w.]+)\s*,\s*\[/.test(rest)) out.push(`${file}: ${name}( without an argument array: ${rest.slice(0, 60).replace(/\s+/g, ' ')}`);
      }
    }
  }
  return out;
}

function srcFiles(d: string, acc: Record<string, string> = {}): Record<string, string> {
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) srcFiles(p, acc);
    else if (e.name.endsWith('.ts')) acc[relative(ROOT, p)] = readFileSync(p, 'utf8');
  }
  return acc;
}

describe('no user value reaches a shell (static check of src/)', () => {
  it('the checker catches each bad pattern', () => {
    expect(shellViolations({ 'a.ts': `import { exec } from 'node:child_process';\nexec(\`qemu-img info \${p}\`);` })).not.toEqual([]);
    expect(shellViolations({ 'b.ts': `spawn('qemu-img', ['info', p], { shell: true });` })).not.toEqual([]);
    expect(shellViolations({ 'c.ts': `execFileSync('sh -c ' + cmd);` })).not.toEqual([]);
    expect(shellViolations({ 'd.ts': `const run = promisify(execFile);\nrun(\`qemu-img \${x}\`);` })).not.toEqual([]);
    expect(shellViolations({ 'e.ts': `const run = promisify(execFile);\nrun('qemu-img', ['info', '--', p]);\nconst m = RE.exec(s);` })).toEqual([]);
  });

  it('src/ has no exec/execSync/shell:true and only argument-array execFile/spawn calls', () => {
    const files = srcFiles(join(ROOT, 'src'));
    expect(Object.keys(files).length).toBeGreaterThan(20);
    expect(shellViolations(files)).toEqual([]);
  });
});
