/**
 * Setup file of every vitest config: after each test file, its temp directories go
 * (test/support/temp-dirs.ts). Registered before the file's own hooks, so with vitest's stacked
 * after-hooks it runs after them: a suite's afterAll may still use its work dir (stop a watcher
 * whose DB is there).
 */
import { afterAll } from 'vitest';
import { removeTempDirs } from './temp-dirs.js';

afterAll(() => {
  removeTempDirs();
});
