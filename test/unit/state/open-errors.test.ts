/**
 * virtform issue #12: a state DB that could not be opened said only `unable to open database file`.
 * openStateStore now throws StateDbOpenError naming the path and the reason. The permission cases
 * run in a child process as user `nobody` when the tests run as root (root ignores file modes).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { StateDbOpenError, openStateStore } from '../../../src/state/index.js';
import { tempDir } from '../../support/manifests.js';

const here = dirname(fileURLToPath(import.meta.url));
const childScript = join(here, 'support', 'open-child.ts');
const work = tempDir('vftest-dbopen-');
chmodSync(work, 0o755);
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function openError(path: string): Promise<StateDbOpenError> {
  const e = await openStateStore(path).then((s) => s.close(), (err: unknown) => err);
  expect(e).toBeInstanceOf(StateDbOpenError);
  return e as StateDbOpenError;
}

/** Open `path` as an unprivileged user: root would not be refused by the file modes. */
function openUnprivileged(path: string): string {
  const asRoot = process.getuid?.() === 0;
  const cmd = asRoot ? 'setpriv' : process.execPath;
  const args = [...(asRoot ? ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath] : []), '--import', 'tsx', childScript, path];
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: join(here, '../../..') });
  return `${r.stdout}${r.stderr}`.trim();
}

describe('state DB open errors name the path and the reason', () => {
  it('a directory given as the DB path', async () => {
    const path = join(work, 'adir');
    mkdirSync(path);
    const e = await openError(path);
    expect(e.message).toBe(`cannot open state DB ${path}: ${path} is a directory, not a database file`);
  });

  it('a file that is not a SQLite database', async () => {
    const path = join(work, 'notes.db');
    writeFileSync(path, 'this is not a database, just some text that is long enough to fill a header. '.repeat(3));
    const e = await openError(path);
    expect(e.message).toBe(`cannot open state DB ${path}: ${path} is not a SQLite database (SQLITE_NOTADB)`);
  });

  it('a missing parent that cannot be created because a file is in the way', async () => {
    const file = join(work, 'plain-file');
    writeFileSync(file, 'x');
    const path = join(file, 'sub', 'state.db');
    const e = await openError(path);
    expect(e.message).toBe(`cannot open state DB ${path}: cannot create directory ${join(file, 'sub')}: ${file} is not a directory`);
  });

  it('a missing parent that cannot be created: no permission (EACCES)', () => {
    const ro = join(work, 'ro-parent');
    mkdirSync(ro, { mode: 0o555 });
    chmodSync(ro, 0o555);
    const path = join(ro, 'y', 'state.db');
    expect(openUnprivileged(path)).toBe(`ERROR cannot open state DB ${path}: cannot create directory ${join(ro, 'y')}: ${ro} is not writable (EACCES)`);
    expect(existsSync(join(ro, 'y'))).toBe(false);
  });

  it('a folder that is not writable (EACCES)', () => {
    const ro = join(work, 'ro-dir');
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    const path = join(ro, 'state.db');
    expect(openUnprivileged(path)).toBe(`ERROR cannot open state DB ${path}: directory ${ro} is not writable (EACCES)`);
  });

  it('a DB file that may not be read (EACCES)', async () => {
    const dir = join(work, 'rw-dir');
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const path = join(dir, 'state.db');
    await (await openStateStore(path)).close();
    chmodSync(path, 0o200);
    expect(openUnprivileged(path)).toBe(`ERROR cannot open state DB ${path}: file ${path} is not readable and writable (EACCES)`);
  });

  it('control: the unprivileged child opens a DB it may write', () => {
    const dir = join(work, 'open-dir');
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    expect(openUnprivileged(join(dir, 'state.db'))).toBe('OPENED');
  });
});
