/**
 * The state backends a per-backend suite runs on: SQLite always (a file in a temporary directory,
 * removed after the file's tests); PostgreSQL too when a private cluster is given in
 * VIRTFORM_TEST_PG_URL (`make test-postgres`; test/support/postgres.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { createDatabase } from './postgres.js';

export interface Backend {
  name: 'sqlite' | 'postgres';
  /** A location (file or URL) of a new, empty state DB. */
  fresh(): Promise<string>;
}

/** The backends, named after `label` (`vf-<label>-` directories, `vftest_<label>_<pid>_<n>` databases). Call at the top of a test file. */
export function stateBackends(label: string): Backend[] {
  const dirs: string[] = [];
  let n = 0;
  const backends: Backend[] = [{
    name: 'sqlite',
    fresh: async () => {
      const dir = mkdtempSync(join(tmpdir(), `vf-${label}-`));
      dirs.push(dir);
      return join(dir, 'state.db');
    },
  }];
  const PG = process.env.VIRTFORM_TEST_PG_URL;
  if (PG) backends.push({ name: 'postgres', fresh: () => createDatabase(PG, `vftest_${label}_${process.pid}_${++n}`) });
  afterAll(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  return backends;
}
