/**
 * A test file's temp directories are removed after its tests (test/support/temp-dirs.ts, by the
 * setup file test/support/temp-cleanup.ts), after the file's own after-hooks.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { madeTempDirs, makeTempDir, removeTempDirs } from '../../support/temp-dirs.js';
import { suiteNames } from '../../support/names.js';
import { tempDir } from '../../support/manifests.js';

let late: string | undefined;

afterAll(() => {
  // The file's own after-hook still finds its work dir: the setup file's removal runs later.
  expect(late && existsSync(late)).toBe(true);
  expect(madeTempDirs()).toEqual([late]);
});

describe('temp directories of a test file', () => {
  it('both helpers register what they make; removal takes the directory and its contents', () => {
    const a = makeTempDir('vftest-tmpdirs-');
    const b = suiteNames('bad').tempDir();
    const c = tempDir('vftest-tmpdirs-');
    writeFileSync(join(a, 'f'), 'x');
    expect(madeTempDirs()).toEqual([a, b, c]);
    removeTempDirs();
    expect(existsSync(a)).toBe(false);
    expect(existsSync(b)).toBe(false);
    expect(existsSync(c)).toBe(false);
    expect(madeTempDirs()).toEqual([]);
  });

  it('VIRTFORM_TEST_KEEP_TMP=1 keeps them', () => {
    const d = makeTempDir('vftest-tmpdirs-');
    process.env.VIRTFORM_TEST_KEEP_TMP = '1';
    try {
      removeTempDirs();
      expect(existsSync(d)).toBe(true);
    } finally {
      delete process.env.VIRTFORM_TEST_KEEP_TMP;
    }
    removeTempDirs();
    expect(existsSync(d)).toBe(false);
  });

  it('a work dir made last is there for the file\'s own after-hook', () => {
    late = tempDir('vftest-tmpdirs-');
    expect(existsSync(late)).toBe(true);
  });
});
