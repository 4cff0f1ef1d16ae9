/**
 * The fast read of manifest files (js-yaml with `yaml`'s YAML 1.2 core resolution, issue 22) gives
 * exactly what `yaml`'s parse gives, or leaves the file to `yaml`: the same documents (values,
 * starts), the same errors. Compared on every YAML file of the repository, on inputs chosen where
 * the two libraries differ, and on thousands of mutations of real manifests (fast-check, fixed
 * seed; 45,000 more with other seeds found no difference when this was written).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { docToJs, locate, parseYamlFile, type SourceDoc } from '../../../src/manifest/yaml-source.js';
import type { FieldPath } from '../../../src/manifest/errors.js';
import { ROOT } from '../../support/cli.js';

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...yamlFiles(p));
    else if (/\.ya?ml$/.test(e.name)) out.push(p);
  }
  return out.sort();
}

/** Every path to a leaf or collection of a JS value (to compare positions of both parses). */
function paths(v: unknown, prefix: FieldPath = [], out: FieldPath[] = []): FieldPath[] {
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...prefix, i], out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out);
  return out;
}

interface Outcome {
  errors: string[];
  docs: { index: number; start: string; value: unknown }[];
}

function outcome(text: string | Buffer, fast: boolean): { outcome: Outcome; docs: SourceDoc[]; readFast: boolean } {
  const bytes = typeof text === 'string' ? Buffer.from(text) : text;
  const r = parseYamlFile('m.yaml', bytes, { fast });
  return {
    outcome: {
      errors: r.errors.map((e) => `${e.line}:${e.col} ${e.message}`),
      docs: r.docs.map((sd) => {
        const js = docToJs(sd);
        return { index: sd.index, start: `${sd.start.line}:${sd.start.col}`, value: js.ok ? js.value : js.error.message };
      }),
    },
    docs: r.docs,
    readFast: r.docs.some((sd) => 'value' in sd),
  };
}

/** Both parses agree; returns whether the fast read took the file. */
function same(text: string | Buffer, o: { positions?: boolean } = {}): boolean {
  const fast = outcome(text, true);
  const slow = outcome(text, false);
  expect(fast.outcome).toEqual(slow.outcome);
  if (o.positions && fast.readFast) {
    // The lazy positions of a file read fast are yaml's.
    fast.docs.forEach((sd, i) => {
      for (const p of paths(fast.outcome.docs[i]!.value).slice(0, 200)) {
        expect(locate(sd, p), p.join('.')).toEqual(locate(slow.docs[i]!, p));
        expect(locate(sd, p, { key: true })).toEqual(locate(slow.docs[i]!, p, { key: true }));
      }
    });
  }
  return fast.readFast;
}

describe('fast read of manifest YAML', () => {
  const files = [...yamlFiles(join(ROOT, 'manifests')), ...yamlFiles(join(ROOT, 'test/fixtures'))];

  it('gives the same documents, starts, errors and positions as yaml for every YAML file of the repository', () => {
    expect(files.length).toBeGreaterThan(100);
    let fast = 0;
    for (const f of files) {
      const bytes = readFileSync(f);
      if (bytes.length > 1024 * 1024) continue;
      if (same(bytes, { positions: true })) fast++;
    }
    // Most files are plain manifests, which the fast read takes (else this test would prove nothing).
    expect(fast).toBeGreaterThan(files.length / 2);
  });

  // Where js-yaml's own schemas and YAML 1.2 core (yaml's) differ, or where the libraries could.
  const cases: [string, string][] = [
    ['ints', 'a: 0o17\nb: 0x1F\nc: +12\nd: -0\ne: 012\nf: 1_000\ng: 0b101\nh: 1:20\ni: 0o8\nj: 0x\nk: 9007199254740993\n'],
    ['floats', 'a: .5\nb: 1.\nc: 1e3\nd: 1.0e+3\ne: .inf\nf: -.Inf\ng: .NaN\nh: 1_0.5\ni: +.5\nj: -.5e3\nk: 1e\nl: .\nm: 3.10\nn: .nan\no: 1.5E-2\n'],
    ['bools and nulls', 'a: yes\nb: on\nc: True\nd: tRue\ne: ~\nf: Null\ng:\nh: NULL\ni: nULL\nj: FALSE\nk: n\n'],
    ['timestamps stay strings', 'a: 2001-12-14\nb: 2001-12-14t21:59:43.10-05:00\n'],
    ['quoted', 'a: \'1\'\nb: "x\\ty\\u00e9\\x41\\N\\_"\nc: \'it\'\'s\'\nd: "a\n  b"\n'],
    ['block scalars', 'a: |\n  x\n   y\n\n  z\nb: |-\n  x\nc: |+\n  x\n\nd: >\n  a\n  b\n\n   more\n  c\ne: >-\n  f\nf: |2\n    two\n'],
    ['plain multi-line', 'a: one\n  two\n\n  three\nb: x # comment\nc: "q"#c\n'],
    ['flow', 'a: {b: 1, c: [1, 2, {d: e}], f: []}\ng: [a, b,]\nh: {}\ni: [ "x", \'y\' ]\n'],
    ['keys', '1: a\ntrue: b\n"": c\n0x10: d\n1.50: e\nkey with spaces: f\n"k:v": g\n'],
    ['null keys', '~: a\n', ],
    ['empty key', ': a\n'],
    ['null keys of a flow mapping', 'a: {null}\nb: {~, c}\nc: {x: 1, NULL}\n"null": quoted\n'],
    ['explicit key', '? a\n: b\n'],
    ['collection key', '[a, b]: c\n'],
    ['flow collection key', '{a: 1}: c\n'],
    ['collections as keys of a flow mapping', 'a: {matchLabels:, {zone: c}}\nb: {{z: c}}\nc: {b: 1, [x]}\nd: {b: 1, [x, y]}\ne: {b: 1, []}\nf: {[x]}\n'],
    ['lists of flow mappings', 'a: [{x: 1}, {y: 2}]\nb: [a, [b], c]\nc: {b: {c: 1}, d: [1]}\n'],
    ['empty sequence entries', 'a:\n  b:\n    -\n- x\n'],
    ['an empty entry, then a less indented one', '- a:\n  -\n- x\n'],
    ['an empty entry with a comment', 'a:\n  - # c\n- x\n'],
    ['an empty entry at the end of a list', 'b:\n  -\n  - x\nc: -\n'],
    ['a tab on a blank line', 'metadata:\n\t\n\nyes: p\n'],
    ['a tab in a block scalar', 'a: |\n  x\n\t\n  y\n'],
    ['anchors', 'a: &x {b: 1}\nc: *x\n'],
    ['tags', 'a: !!str 1\nb: !!int "2"\nc: !foo x\nd: !!binary aGk=\n'],
    ['directive', '%YAML 1.1\n---\na: yes\n'],
    ['documents', '---\na: 1\n---\nb: 2\n...\n---\nc: 3\n'],
    ['empty documents', '---\n---\na: 1\n---\n# only a comment\n---\n'],
    ['leading comments', '# c\n\n# d\napiVersion: v\n---\n\n   # e\nkind: K\n'],
    ['same line as ---', '--- a: 1\n--- [1, 2]\n--- x\n'],
    ['null documents', '--- ~\n--- null\n---\n'],
    ['scalar documents', 'just a string\n'],
    ['bom', '\uFEFFa: 1\n'],
    ['crlf', 'a: 1\r\nb: |\r\n  x\r\n  y\r\n'],
    ['tab indentation', 'a:\n\tb: 1\n'],
    ['tab separation', 'a:\tb\nc: [1,\t2]\n'],
    ['duplicate keys', 'a: 1\na: 2\n'],
    ['duplicate after stringify', '1: a\n"1": b\n'],
    ['merge key', 'a: {x: 1}\n<<: {y: 2}\n'],
    ['proto key', '__proto__: {polluted: 1}\nconstructor: x\n'],
    ['unicode line separators', 'a: x\u2028y\nb: "p\u0085q"\n'],
    ['long key', `${'k'.repeat(1100)}: v\n`],
    ['long value', `k: ${'v'.repeat(1100)}\n`],
    ['reserved indicators', 'a: @b\n'],
    ['backquote', 'a: `b`\n'],
    ['nested compact', 'a:\n- 1\n- - 2\n  - 3\n- b: c\n  d: e\n'],
    ['a: b: c', 'a: b: c\n'],
    ['multi-line quoted key', '"a\n b": c\n'],
    ['deep block nesting', `${Array.from({ length: 40 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n')} x\n`],
    ['deep flow nesting', `a: ${'['.repeat(40)}${']'.repeat(40)}\n`],
    ['depth at the limit', `${Array.from({ length: 31 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n')} x\n`],
    ['indicators in plain scalars', 'a: x-*y\nb: R&D\nc: wow!\nd: a ? b\ne: http://h:80/p\nf: "a: b"\ng: a #b\n'],
    ['comment after document', 'a: 1 # x\n# trailing\n'],
    ['missing final newline', 'a: 1'],
    ['only comments', '# nothing\n'],
    ['empty file', ''],
    ['unclosed flow', 'a: [1, 2\n'],
    ['unclosed quote', 'a: "x\n'],
    ['bad indentation', 'a:\n  b: 1\n c: 2\n'],
    ['document end with content', 'a: 1\n... x\n'],
    ['invalid escape', 'a: "\\q"\n'],
    ['control character', 'a: "x\u0007"\nb: y\u0007\n'],
    ['non-BMP', 'a: "😀"\nb: 😀\n'],
  ];
  it.each(cases)('%s', (_name, text) => {
    same(text, { positions: true });
  });

  it('hands a fast-read value out once: a second docToJs gets a fresh value (validation fills defaults into the first)', () => {
    const r = parseYamlFile('m.yaml', Buffer.from('a: {b: 1}\nc: [x]\n'));
    const sd = r.docs[0]!;
    expect('value' in sd).toBe(true);
    const first = docToJs(sd);
    const second = docToJs(sd);
    expect(first.ok && second.ok).toBe(true);
    if (!first.ok || !second.ok) return;
    expect(second.value).toEqual(first.value);
    expect(second.value).not.toBe(first.value);
    (first.value as { a: { b: number } }).a.b = 2;
    expect((second.value as { a: { b: number } }).a.b).toBe(1);
  });

  it('takes plain manifests (a file like the generated bench sets) fast', () => {
    const text = readFileSync(join(ROOT, 'manifests/examples/30-vms.yaml'), 'utf8');
    expect(same(text)).toBe(true);
  });

  it('agrees on mutations of real manifests (insert, delete, replace YAML-significant characters)', () => {
    const texts = files.map((f) => readFileSync(f, 'utf8')).filter((t) => t.length > 0 && t.length < 4000);
    const CHARS = ['{[', ', {', ', [', '[]', '\t\n',' ', ':', '-', '[', ']', '{', '}', ',', '#', '&', '*', '!', '|', '>', "'", '"', '?', '%', '@', '`', '\t', '\n', '~', '.', '0', '1', 'x', '\\',
      '---\n', '--- ', '...', ': ', '- ', '\n  ', '\n- ', ' #c', '#c', '"q"', "'q'", '[a]', '{a: 1}', '|\n', '>-\n', '|2\n', '&a ', '*a', '!!str ', '? ', '~', 'null',
      '0o7', '0x1', '1e3', '.5', '1_0', '.inf', 'True', 'yes', '\u2028', '\u00e9', '  ', '\n\n'];
    const mutation = fc.record({ at: fc.nat(), del: fc.nat({ max: 3 }), ins: fc.constantFrom(...CHARS) });
    let fastTaken = 0;
    fc.assert(
      fc.property(fc.nat({ max: texts.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 3 }), (which, ms) => {
        let t = texts[which]!;
        for (const m of ms) {
          const at = m.at % (t.length + 1);
          t = t.slice(0, at) + m.ins + t.slice(at + m.del);
        }
        if (same(t)) fastTaken++;
      }),
      { seed: 22, numRuns: 2500 },
    );
    expect(fastTaken).toBeGreaterThan(250);
  }, 120_000);
});
