/**
 * The layering of `src/` (issue 20, docs/architecture.md "Layers"):
 *
 * 1. No import cycle in `src/`, counting `import type`, `export … from` and `import('…')` types too
 *    (the kind contract's old cycle was type-only). The import graph is read with the TypeScript
 *    compiler's parser and resolved with its own module resolution (`.js` specifiers → `.ts` files,
 *    exactly as `tsc` does), and its strongly connected components found with Tarjan's algorithm.
 *    Written here rather than with madge or dependency-cruiser: the compiler is already a dependency,
 *    the script is short, and it needs no configuration to resolve NodeNext `.js` specifiers or to
 *    count type-only imports.
 * 2. No kind literal ('StoragePool', 'Volume', 'Network', 'VirtualMachine', 'Snapshot' as a string literal or
 *    literal type) outside `src/reconcile/kinds/`, `src/model/` and `src/manifest/` (generated files
 *    excluded): all knowledge of a kind lives in its module.
 * 3. Kind modules (`kinds/<kind>/`) import no other kind and no stage; stages import no concrete kind.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import ts from 'typescript';
import { ROOT } from '../../support/real-host.js';

const SRC = join(ROOT, 'src');

function* files(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) yield p;
  }
}

const isGenerated = (f: string): boolean =>
  f.includes(`${sep}generated${sep}`) || f.endsWith('.generated.ts');

export interface ImportEdge { to: string; typeOnly: boolean }

/** Module specifiers a file imports: declarations, re-exports, `import('…')` calls and types. */
export function importsOf(file: string, text: string): { spec: string; typeOnly: boolean }[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: { spec: string; typeOnly: boolean }[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n) && ts.isStringLiteral(n.moduleSpecifier)) {
      const c = n.importClause;
      const typeOnly = !!c && (c.isTypeOnly || (!c.name && !!c.namedBindings && ts.isNamedImports(c.namedBindings)
        && c.namedBindings.elements.length > 0 && c.namedBindings.elements.every((e) => e.isTypeOnly)));
      out.push({ spec: n.moduleSpecifier.text, typeOnly });
    } else if (ts.isExportDeclaration(n) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      const typeOnly = n.isTypeOnly || (!!n.exportClause && ts.isNamedExports(n.exportClause)
        && n.exportClause.elements.length > 0 && n.exportClause.elements.every((e) => e.isTypeOnly));
      out.push({ spec: n.moduleSpecifier.text, typeOnly });
    } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal)) {
      out.push({ spec: n.argument.literal.text, typeOnly: true });
    } else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword && n.arguments[0] && ts.isStringLiteral(n.arguments[0])) {
      out.push({ spec: n.arguments[0].text, typeOnly: false });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

/** The import graph of `src/` (files relative to the repository root), resolved like `tsc` does. */
export function importGraph(): Map<string, ImportEdge[]> {
  const options: ts.CompilerOptions = { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, allowJs: false };
  const host = ts.createCompilerHost(options);
  const cache = ts.createModuleResolutionCache(ROOT, (f) => f, options);
  const graph = new Map<string, ImportEdge[]>();
  for (const f of files(SRC)) {
    const edges: ImportEdge[] = [];
    for (const { spec, typeOnly } of importsOf(f, readFileSync(f, 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const r = ts.resolveModuleName(spec, f, options, host, cache, undefined, ts.ModuleKind.ESNext).resolvedModule;
      if (!r || r.isExternalLibraryImport || r.resolvedFileName.endsWith('.d.ts')) continue;
      edges.push({ to: relative(ROOT, r.resolvedFileName), typeOnly });
    }
    graph.set(relative(ROOT, f), edges);
  }
  return graph;
}

/** Strongly connected components with more than one file (or a file importing itself): the cycles. */
export function cycles(graph: Map<string, ImportEdge[]>, valueOnly = false): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const next = (v: string): string[] => (graph.get(v) ?? []).filter((e) => !valueOnly || !e.typeOnly).map((e) => e.to);
  const strong = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of next(v)) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1 || next(v).includes(v)) out.push(c.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) strong(v);
  return out;
}

const KIND_LITERALS = new Set(['StoragePool', 'Volume', 'Network', 'VirtualMachine', 'Snapshot']);
const KIND_HOMES = ['src/reconcile/kinds/', 'src/model/', 'src/manifest/'].map((p) => p.split('/').join(sep));

/** String literals (and literal types) naming a kind in one file. */
export function kindLiterals(file: string, text: string): { line: number; text: string }[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: { line: number; text: string }[] = [];
  const visit = (n: ts.Node): void => {
    if ((ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) && KIND_LITERALS.has(n.text)) {
      const line = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
      out.push({ line: line + 1, text: text.split('\n')[line]!.trim() });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

/** Which layer a file belongs to, for the kind/stage rules. */
function kindFolder(f: string): string | undefined {
  const m = /^src\/reconcile\/kinds\/([^/]+)\//.exec(f.split(sep).join('/'));
  return m?.[1];
}
const STAGES = /^src\/reconcile\/(desired|observe|diff|plan|apply|engine|safety)\.ts$/;
const isStage = (f: string): boolean => STAGES.test(f.split(sep).join('/'));

let graphOnce: Map<string, ImportEdge[]> | undefined;
const srcGraph = (): Map<string, ImportEdge[]> => (graphOnce ??= importGraph());

describe('layers of src/', () => {
  it('the cycle finder finds what it should', () => {
    const g = new Map<string, ImportEdge[]>([
      ['a', [{ to: 'b', typeOnly: false }]],
      ['b', [{ to: 'c', typeOnly: true }]],
      ['c', [{ to: 'a', typeOnly: false }]],
      ['d', [{ to: 'a', typeOnly: false }]],
    ]);
    expect(cycles(g)).toEqual([['a', 'b', 'c']]);
    expect(cycles(g, true)).toEqual([]);
    const imports = importsOf('t.ts', [
      "import type { A } from './a.js';",
      "import { type B, c } from './b.js';",
      "export type { D } from './d.js';",
      "let x: import('./e.js').E;",
      "const y = await import('./f.js');",
    ].join('\n'));
    expect(imports).toEqual([
      { spec: './a.js', typeOnly: true }, { spec: './b.js', typeOnly: false }, { spec: './d.js', typeOnly: true },
      { spec: './e.js', typeOnly: true }, { spec: './f.js', typeOnly: false },
    ]);
    expect(kindLiterals('t.ts', "const k = 'Volume';\nconst s = 'Volumes';\ntype K = 'Network';").map((x) => x.line)).toEqual([1, 3]);
  });

  it('no import cycle in src/, counting import type', () => {
    const found = cycles(srcGraph());
    expect(found, `import cycles (strongly connected components):\n${found.map((c) => c.join(' → ')).join('\n')}`).toEqual([]);
  });

  it('no kind literal outside src/reconcile/kinds/, src/model/ and src/manifest/', () => {
    const found: string[] = [];
    for (const f of files(SRC)) {
      const rel = relative(ROOT, f);
      if (isGenerated(rel) || KIND_HOMES.some((h) => rel.startsWith(h))) continue;
      for (const x of kindLiterals(f, readFileSync(f, 'utf8'))) found.push(`${rel}:${x.line}: ${x.text}`);
    }
    expect(found, `kind literals outside the kinds (move the logic into the kind's module):\n${found.join('\n')}`).toEqual([]);
  });

  it('a kind imports no other kind and no stage; a stage imports no concrete kind', () => {
    const bad: string[] = [];
    for (const [from, edges] of srcGraph()) {
      const k = kindFolder(from);
      for (const { to } of edges) {
        const tk = kindFolder(to);
        if (k && tk && tk !== k) bad.push(`${from} imports kind ${tk} (${to})`);
        if (k && isStage(to)) bad.push(`${from} imports stage ${to}`);
        if (k && to.split(sep).join('/') === 'src/reconcile/kinds/index.ts') bad.push(`${from} imports the registry`);
        if (isStage(from) && tk) bad.push(`${from} imports concrete kind ${to}`);
        if (from.split(sep).join('/').startsWith('src/reconcile/core/') && (tk || isStage(to) || to.split(sep).join('/').startsWith('src/reconcile/kinds/'))) {
          bad.push(`${from} (core) imports ${to}`);
        }
      }
    }
    expect(bad, bad.join('\n')).toEqual([]);
  });

  it('src/dashboard/ imports model, status, state, watch and reconcile types only; only watch/http.ts and the CLI import it', () => {
    const bad: string[] = [];
    const norm = (f: string): string => f.split(sep).join('/');
    const ALLOWED = ['src/dashboard/', 'src/model/', 'src/status/', 'src/state/', 'src/watch/', 'src/util/'];
    for (const [from, edges] of srcGraph()) {
      const f = norm(from);
      for (const { to, typeOnly } of edges) {
        const t = norm(to);
        if (f.startsWith('src/dashboard/')) {
          const reconcileType = t.startsWith('src/reconcile/') && typeOnly;
          if (!ALLOWED.some((a) => t.startsWith(a)) && !reconcileType) bad.push(`${f} imports ${t}${t.startsWith('src/reconcile/') ? ' (reconcile: types only)' : ''}`);
          if (t === 'src/watch/http.ts' || t === 'src/watch/index.ts') bad.push(`${f} imports ${t} (the listener routes into the dashboard, not back)`);
        } else if (t.startsWith('src/dashboard/') && f !== 'src/watch/http.ts' && !f.startsWith('src/cli/')) {
          bad.push(`${f} imports ${t} (only src/watch/http.ts and src/cli/ use the dashboard)`);
        }
      }
    }
    expect(bad, bad.join('\n')).toEqual([]);
  });
});
