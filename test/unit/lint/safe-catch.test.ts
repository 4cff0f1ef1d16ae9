/**
 * No silent catch (issue 18, finding 10): every place in `src/` that catches an error and drops it
 * says why that is safe, with a `// safe-catch: <reason>` comment on the catch's line, the line
 * before it, or the first line of its block. "Drops" means: a `catch` clause without a binding or
 * whose binding the block never uses, or a `.catch(handler)` / `.then(_, handler)` whose handler
 * takes no parameter or never uses it. A handler that uses the error (rethrows, logs, returns it,
 * tests its code) is not dropping it. Read with the TypeScript compiler's parser, not a regex.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { ROOT } from '../../support/real-host.js';

const TAG = /\/\/\s*safe-catch:\s*\S/;

function* files(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) yield p;
  }
}

/** Whether `name` is referenced anywhere inside `body`. */
function uses(body: ts.Node, name: string): boolean {
  let found = false;
  const visit = (n: ts.Node): void => {
    if (found) return;
    if (ts.isIdentifier(n) && n.text === name) found = true;
    else ts.forEachChild(n, visit);
  };
  visit(body);
  return found;
}

/** Whether a handler function drops the error it gets. */
function handlerDrops(fn: ts.Expression): boolean {
  if (!ts.isArrowFunction(fn) && !ts.isFunctionExpression(fn)) return false; // a named function: assumed to handle it
  const p = fn.parameters[0];
  if (!p) return true;
  if (!ts.isIdentifier(p.name)) return false; // destructured: uses parts of it
  return !uses(fn.body, p.name.text);
}

export interface Finding {
  file: string;
  line: number;
  text: string;
}

/** Catches in one source file that drop their error without a `safe-catch:` comment. */
export function silentCatches(file: string, text: string): Finding[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const lines = text.split('\n');
  const out: Finding[] = [];
  /** The tag on the catch's line, the line before, or (a block over several lines) the first line inside. */
  const tagged = (node: ts.Node, body: ts.Node): boolean => {
    const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
    const candidates = [lines[line], lines[line - 1]];
    if (sf.getLineAndCharacterOfPosition(body.getEnd()).line > line) candidates.push(lines[line + 1]);
    return candidates.some((l) => l !== undefined && TAG.test(l));
  };
  const report = (node: ts.Node): void => {
    const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
    out.push({ file, line: line + 1, text: (lines[line] ?? '').trim() });
  };
  const visit = (n: ts.Node): void => {
    if (ts.isCatchClause(n)) {
      const v = n.variableDeclaration;
      const drops = !v || (ts.isIdentifier(v.name) && !uses(n.block, v.name.text));
      if (drops && !tagged(n, n.block)) report(n);
    } else if (ts.isCallExpression(n) && ts.isPropertyAccessExpression(n.expression)) {
      const method = n.expression.name.text;
      const handler = method === 'catch' ? n.arguments[0] : method === 'then' ? n.arguments[1] : undefined;
      if (handler && handlerDrops(handler) && !tagged(n.expression.name, handler)) report(n.expression.name);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

describe('no silent catch in src/', () => {
  it('the check finds what it should', () => {
    const src = [
      'a.catch(() => undefined);',
      'a.catch((e) => log(e));',
      'try { x(); } catch { y(); }',
      'a.catch(() => undefined); // safe-catch: best effort',
      'try { x(); } catch (e) { throw wrap(e); }',
      '// safe-catch: nothing to clean',
      'try { x(); } catch { }',
      'try { x(); } catch (e) { return 1; }',
      'p.then(f, () => null);',
    ].join('\n');
    expect(silentCatches('t.ts', src).map((f) => f.line)).toEqual([1, 3, 8, 9]);
  });

  it('every catch in src/ that drops its error says why that is safe (// safe-catch: <reason>)', () => {
    const found: string[] = [];
    for (const f of files(join(ROOT, 'src'))) {
      if (f.includes(`${join('src', 'libvirt', 'generated')}`)) continue;
      for (const x of silentCatches(f, readFileSync(f, 'utf8'))) found.push(`${relative(ROOT, x.file)}:${x.line}: ${x.text}`);
    }
    expect(found, `catches that drop the error without a "// safe-catch: <reason>" comment:\n${found.join('\n')}`).toEqual([]);
  });
});
