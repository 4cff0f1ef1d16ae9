/**
 * Temp directories of a test file: made under /tmp with a suite's prefix, and removed after the
 * file's tests by the setup file every vitest config loads (test/support/temp-cleanup.ts), passed
 * or failed. Before, each suite removed its own in afterAll, and several forgot some (a second
 * work dir, one made in a test body): /tmp filled with `vftest-<id>-*` folders after every run.
 * `VIRTFORM_TEST_KEEP_TMP=1` keeps them (to look at a failure). The global setup also removes
 * stale ones a killed run left (test/support/global-setup.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made = new Set<string>();

/** A fresh directory `/tmp/<prefix>XXXXXX`, removed after this test file. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.add(dir);
  return dir;
}

/** The directories made by {@link makeTempDir} in this file that are still registered. */
export function madeTempDirs(): string[] {
  return [...made];
}

/** Remove every directory this file made (what is already gone is skipped). */
export function removeTempDirs(): void {
  if (process.env.VIRTFORM_TEST_KEEP_TMP === '1') return;
  for (const dir of made) {
    rmSync(dir, { recursive: true, force: true });
    made.delete(dir);
  }
}
