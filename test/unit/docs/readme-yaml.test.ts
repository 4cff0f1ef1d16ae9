/**
 * Every YAML block of the README is a valid manifest set: written to a folder of its own and
 * loaded as `virtform validate` loads it (schemas, cross-references; a `kind: Policy` block as `--policy`
 * loads it). A block
 * that shows only part of a document (a `spec:` excerpt, the metadata reference) is validated as
 * a part: it must parse as YAML and be marked as an excerpt by its first line (`# excerpt: …`),
 * so a new full example cannot slip in unchecked.
 */
import { describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { loadManifests, loadPolicy } from '../../../src/manifest/index.js';
import { codeBlocks, readme } from '../../support/readme.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const blocks = codeBlocks(readme()).filter((b) => b.lang === 'yaml');

describe('README YAML examples', () => {
  it('the README has YAML examples (the guide shows manifests)', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(3);
  });

  for (const b of blocks) {
    const excerpt = /^#\s*excerpt\b/.test(b.text);
    it(`README.md:${b.line}: ${excerpt ? 'an excerpt that parses as YAML' : 'a valid manifest set'}`, async () => {
      for (const d of parseAllDocuments(b.text)) expect(d.errors.map((e) => e.message), `README.md:${b.line}`).toEqual([]);
      if (excerpt) return;
      const dir = makeTempDir('vf-readme-');
      try {
        writeFileSync(join(dir, 'example.yaml'), b.text);
        // A policy file is checked as --policy loads it; everything else as a manifest folder.
        const r = /^kind: Policy$/m.test(b.text) ? await loadPolicy(join(dir, 'example.yaml')) : await loadManifests(dir);
        expect(r.ok ? [] : r.errors.map((e) => `${e.line}:${e.col}: ${e.message}`), `README.md:${b.line}`).toEqual([]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
