/**
 * The CLI users run (issue 22): `npm run build`'s bundle, dist/cli/main.js with its chunks in
 * dist/chunks/ (scripts/build-cli.mjs). It answers --version, validates with every error at
 * file:line:col exactly as the sources do (precompiled schema validators, the fast YAML read), and
 * each command loads only what it needs: `validate` neither the state DB drivers, nor the libvirt
 * client, nor the engine, nor chokidar; `--version` not even the manifest layer. What a run loads is
 * recorded in the child itself (an ESM load hook and the CommonJS cache at exit) and mapped to
 * sources through esbuild's metafile, so a new top-level import anywhere on the way fails here.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadManifests } from '../../../src/manifest/index.js';
import { formatManifestError } from '../../../src/manifest/errors.js';
import { manifestFiles } from '../../../bench/gen-manifests.js';
import { CLI, ensureBuilt, ROOT } from '../../support/cli.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('faststart');
const BROKEN = join(ROOT, 'test/fixtures/manifests/broken');
// No policy file of this machine's /etc takes part.
const ENV = { ...process.env, NO_COLOR: '1', VIRTFORM_POLICY: '/nonexistent/vftest-faststart-policy.yaml' };

interface Meta {
  outputs: Record<string, { imports: { path: string; kind: string; external?: boolean }[]; inputs: Record<string, unknown> }>;
}

let work: string;
let meta: Meta;
let tracer: string;

beforeAll(() => {
  ensureBuilt();
  work = N.tempDir();
  meta = JSON.parse(readFileSync(join(ROOT, 'dist/chunks/meta.json'), 'utf8')) as Meta;
  // A preload that records every module the CLI loads: ESM through a load hook, CommonJS (what
  // bundled packages and createRequire load) from the require cache at exit.
  tracer = join(work, 'trace');
  mkdirSync(tracer);
  writeFileSync(join(tracer, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) { appendFileSync(process.env.VFTEST_LOADED, url + '\\n'); return next(url, context); }
`);
  writeFileSync(join(tracer, 'preload.mjs'), `import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';
register(new URL('./hooks.mjs', import.meta.url));
const cache = createRequire(import.meta.url).cache;
process.on('exit', () => appendFileSync(process.env.VFTEST_LOADED, Object.keys(cache).map((f) => pathToFileURL(f).href + '\\n').join('')));
`);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, env: ENV, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Run the built CLI with the recording preload: its result and the files it loaded (relative to the repository). */
function traced(args: string[], name: string): { code: number | null; stdout: string; stderr: string; loaded: string[] } {
  const out = join(work, `${name}.loaded`);
  writeFileSync(out, '');
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(join(tracer, 'preload.mjs')).href, CLI, ...args], {
    cwd: ROOT, env: { ...ENV, VFTEST_LOADED: out }, encoding: 'utf8', timeout: 120_000,
  });
  const loaded = [...new Set(readFileSync(out, 'utf8').split('\n').filter((u) => u.startsWith('file:')).map((u) => relative(ROOT, fileURLToPath(u))))];
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, loaded };
}

/** The sources and packages in the loaded files: a chunk stands for every input esbuild put in it. */
function sourcesOf(loaded: string[]): string[] {
  const out = new Set<string>();
  for (const f of loaded) {
    const chunk = meta.outputs[f];
    if (chunk) for (const input of Object.keys(chunk.inputs)) out.add(input);
    else out.add(f);
  }
  return [...out].sort();
}

/** What must never be loaded by a command that does not talk to the host or the state DB. */
const HOST_OR_DB = [
  /node_modules\/(kysely|better-sqlite3|pg|pg-pool|pg-native|chokidar|prom-client|playwright[^/]*|puppeteer[^/]*|chromium[^/]*)\//,
  /^src\/state\/(?!location\.ts$|types\.ts$)/, // the store (the URL check of --db and the error types are no driver)
  /^src\/(reconcile|watch|fleet|status|git)\//,
  /^src\/libvirt\/(?!xml\/)/, // the libvirt client (XML builders and parsers are pure)
];

describe('the bundled CLI', () => {
  it('is what dist/cli/main.js is: one entry, its chunks beside it, the shebang kept', () => {
    const main = readFileSync(CLI, 'utf8');
    expect(main.startsWith('#!/usr/bin/env node\n')).toBe(true);
    const entry = meta.outputs['dist/cli/main.js'];
    expect(entry).toBeDefined();
    // The entry holds neither commander nor the command tree: both are a chunk it imports when the
    // command line is more than `--version`; each command is a chunk of its own, loaded when it runs.
    expect(Object.keys(entry!.inputs)).toContain('src/cli/main.ts');
    expect(Object.keys(entry!.inputs).filter((i) => i === 'src/cli/program.ts' || i.startsWith('node_modules/'))).toEqual([]);
    const tree = entry!.imports.filter((i) => i.kind === 'dynamic-import').map((i) => i.path)
      .find((p) => Object.keys(meta.outputs[p]!.inputs).includes('src/cli/program.ts'));
    expect(tree).toBeDefined();
    expect(meta.outputs[tree!]!.imports.filter((i) => i.kind === 'dynamic-import').length).toBeGreaterThanOrEqual(6);
  });

  it('--version prints the version, exit 0, and loads neither commander nor the manifest layer nor a command', () => {
    const version = `${JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string}\n`;
    for (const flag of ['--version', '-V']) {
      const r = traced([flag], `version${flag}`);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(version);
      const sources = sourcesOf(r.loaded);
      expect(sources).toContain('src/cli/main.ts');
      expect(sources.filter((s) => s === 'src/cli/program.ts' || /^src\/manifest\/|node_modules\/(commander|yaml|js-yaml|ajv)\//.test(s) || HOST_OR_DB.some((re) => re.test(s)))).toEqual([]);
    }
    // With other arguments, commander answers it: the same text.
    const withOther = cli(['--version', 'validate']);
    expect(withOther).toEqual({ code: 0, stdout: version, stderr: '' });
  });

  it('validate loads the manifest layer only: no state DB driver, no libvirt client, no engine, no chokidar or browser', () => {
    const dir = join(work, 'ok');
    mkdirSync(dir);
    for (const [f, text] of Object.entries(manifestFiles(20, N.name('v')))) writeFileSync(join(dir, f), text);
    const r = traced(['validate', dir], 'validate');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${dir}: 42 resource(s), valid\n`);
    expect(r.code).toBe(0);
    const sources = sourcesOf(r.loaded);
    // What it does load (so the check below is not vacuous).
    expect(sources).toContain('src/manifest/loader.ts');
    expect(sources).toContain('src/cli/commands/validate.ts');
    expect(sources.some((s) => s.startsWith('node_modules/js-yaml/'))).toBe(true);
    expect(sources.filter((s) => HOST_OR_DB.some((re) => re.test(s)))).toEqual([]);
    // Valid files are read by js-yaml alone: `yaml` (positions) is neither bundled on this path nor loaded.
    expect(sources.filter((s) => s.startsWith('node_modules/yaml/'))).toEqual([]);
    // The validators are precompiled: ajv's compiler is not loaded.
    expect(sources.filter((s) => /node_modules\/ajv\/dist\/(core|compile|2020)/.test(s))).toEqual([]);
  });

  it('only watch reaches chokidar; no command but the state DB\'s users reaches kysely (the chunks\' static imports)', () => {
    const closure = (entry: string): { inputs: Set<string>; externals: Set<string> } => {
      const inputs = new Set<string>();
      const externals = new Set<string>();
      const seen = new Set<string>();
      const stack = [entry];
      while (stack.length) {
        const k = stack.pop()!;
        if (seen.has(k)) continue;
        seen.add(k);
        for (const i of Object.keys(meta.outputs[k]!.inputs)) inputs.add(i);
        for (const imp of meta.outputs[k]!.imports) {
          if (imp.external) externals.add(imp.path);
          else if (imp.kind === 'import-statement') stack.push(imp.path);
        }
      }
      return { inputs, externals };
    };
    // Each command's chunk: what an `await import()` of it (main.js's, or reconcile's of reconcile-fleet) loads.
    const dynamic = Object.values(meta.outputs).flatMap((o) => o.imports.filter((i) => i.kind === 'dynamic-import').map((i) => i.path));
    const commandChunk = (command: string): string => {
      const k = dynamic.find((p) => new RegExp(`^dist/chunks/${command}-[A-Z0-9]+\\.js$`).test(p));
      expect(k, command).toBeDefined();
      expect(closure(k!).inputs.has(`src/cli/commands/${command}.ts`), command).toBe(true);
      return k!;
    };
    const commands = ['validate', 'reconcile', 'status', 'console', 'suspend', 'watch', 'watch-fleet']; // reconcile-fleet is part of reconcile's
    for (const c of commands) {
      const { inputs, externals } = closure(commandChunk(c));
      const watchLike = c === 'watch' || c === 'watch-fleet';
      expect([...externals].filter((e) => e === 'chokidar'), c).toEqual(watchLike ? ['chokidar'] : []);
      if (c === 'validate') expect([...inputs].filter((s) => HOST_OR_DB.some((re) => re.test(s))), c).toEqual([]);
    }
    expect([...closure('dist/cli/main.js').externals].filter((e) => !e.startsWith('node:'))).toEqual([]);
  });

  it('prints every error at file:line:col as the sources do (schema, semantics, YAML syntax, alias bomb)', () => {
    for (const name of ['vcpus-string', 'unknown-field-spec', 'dangling-disk-volume', 'yaml-syntax-error', 'yaml-bomb', 'labels-bad-key', 'mac-unquoted-sexagesimal']) {
      const dir = join(BROKEN, name);
      const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as { file: string; line: number; col: number; messageIncludes: string }[];
      const r = cli(['validate', dir]);
      expect(r.code, name).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines.at(-1)).toBe(`${expected.length} error(s) in ${dir}`);
      expected.forEach((x, i) => {
        expect(lines[i], name).toContain(`${join(dir, x.file)}:${x.line}:${x.col}: `);
        expect(lines[i], name).toContain(x.messageIncludes);
      });
    }
  });

  it('a file with an error loads `yaml` for its positions, at that moment (node_modules: not bundled on validate\'s path)', () => {
    const r = traced(['validate', join(BROKEN, 'vcpus-string')], 'validate-broken');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/:\d+:\d+: /);
    expect(r.loaded.some((f) => f.startsWith('node_modules/yaml/dist/'))).toBe(true);
  });

  it('validate --json of the whole broken corpus: the same errors as the sources\' loader (precompiled validators = ajv at run time)', async () => {
    const r = cli(['validate', '--json', BROKEN]);
    expect(r.code).toBe(2);
    const bundled = (JSON.parse(r.stdout) as { errors: { file: string; line: number; col: number; kind: string | null; name: string | null; field: string | null; message: string }[] }).errors;
    const inProcess = await loadManifests(BROKEN);
    expect(inProcess.ok).toBe(false);
    if (inProcess.ok) return;
    expect(bundled.length).toBeGreaterThan(100);
    expect(bundled.map((e) => formatManifestError({ ...e, kind: e.kind ?? undefined, name: e.name ?? undefined, field: e.field ?? undefined })))
      .toEqual(inProcess.errors.map(formatManifestError));
  });

  it('an error deep in a large file read fast is placed at its exact line and column', () => {
    const dir = join(work, 'big');
    mkdirSync(dir);
    const files = manifestFiles(1000, N.name('b'));
    let vms = files['vms-00000.yaml']!;
    // VM 900's disk names a volume that does not exist; VM 700's memory is not a size.
    vms = vms.replace(`{volume: ${N.name('b')}-v00900,`, `{volume: ${N.name('b')}-missing,`);
    vms = vms.replace(/(name: [^\n]*-d00700\n(?:.*\n){3}  memory: )64MiB/, '$1lots');
    for (const [f, text] of Object.entries({ ...files, 'vms-00000.yaml': vms })) writeFileSync(join(dir, f), text);
    const lineCol = (needle: string): string => {
      const at = vms.indexOf(needle);
      expect(at).toBeGreaterThan(0);
      const before = vms.slice(0, at);
      return `${before.split('\n').length}:${at - before.lastIndexOf('\n')}`;
    };
    const file = join(dir, 'vms-00000.yaml');
    const r = cli(['validate', dir]);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(new RegExp(`^${file}:${lineCol('lots')}: VirtualMachine/${N.name('b')}-d00700: spec\\.memory: .*"lots"`));
    expect(lines[1]).toMatch(new RegExp(`^${file}:${lineCol(`${N.name('b')}-missing`)}: VirtualMachine/${N.name('b')}-d00900: spec\\.disks\\[0\\]\\.volume: .*${N.name('b')}-missing`));
    expect(lines[2]).toBe(`2 error(s) in ${dir}`);
  });
});
