import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatManifestError, loadManifests } from '../../../src/manifest/index.js';

const BROKEN = fileURLToPath(new URL('../../fixtures/manifests/broken/', import.meta.url));

interface Expected {
  file: string;
  line: number;
  col: number;
  kind?: string;
  name?: string;
  field?: string;
  messageIncludes: string;
}

const cases = readdirSync(BROKEN, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

describe('broken manifest corpus', () => {
  it('has at least 60 cases, each with an expected.json', () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
    for (const name of cases) expect(existsSync(join(BROKEN, name, 'expected.json')), name).toBe(true);
  });

  it.each(cases)('%s', async (name) => {
    const dir = join(BROKEN, name);
    const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected[];
    expect(expected.length).toBeGreaterThan(0);
    const result = await loadManifests(dir);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const actual = result.errors.map((e) => ({
      file: relative(dir, e.file),
      line: e.line,
      col: e.col,
      kind: e.kind,
      name: e.name,
      field: e.field,
      message: e.message.replaceAll(`${dir}/`, ''),
    }));
    expect(actual.map((a) => `${a.file}:${a.line}:${a.col} ${a.field ?? ''}`)).toEqual(
      expected.map((x) => `${x.file}:${x.line}:${x.col} ${x.field ?? ''}`),
    );
    expected.forEach((x, i) => {
      const a = actual[i]!;
      expect(a.kind, `${name}[${i}] kind`).toBe(x.kind);
      expect(a.name, `${name}[${i}] name`).toBe(x.name);
      expect(a.field, `${name}[${i}] field`).toBe(x.field);
      expect(a.message, `${name}[${i}] message`).toContain(x.messageIncludes);
    });
    // Every error renders as file:line:col: … on one line (hostile values are escaped).
    for (const e of result.errors) {
      const text = formatManifestError(e);
      expect(text.startsWith(`${e.file}:${e.line}:${e.col}: `)).toBe(true);
      expect(text).not.toMatch(/[\n\r\u0000]/);
    }
  });
});
