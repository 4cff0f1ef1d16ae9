/**
 * A private PostgreSQL cluster for a test run: `initdb --auth=trust` in a temp dir as the `postgres`
 * user, `pg_ctl` on 127.0.0.1 and a free port (its socket in the same dir), stopped and removed
 * after. Debian's own cluster (port 5432) is never used or touched.
 *
 * A run that dies without stopping its cluster leaves `/tmp/vftest-pg-*`: the next call of
 * {@link startPostgres} finds it by its pid files (the owner's in `owner.pid`, the postmaster's in
 * `data/postmaster.pid`), stops the postmaster of a dead owner and removes the dir.
 *
 * `make test-postgres` starts one cluster in its global setup ({@link postgresGlobalSetup}) and
 * hands its base URL to the test files in `VIRTFORM_TEST_PG_URL`; {@link testDbLocation} then
 * gives each caller a database of its own on it, or a SQLite file when no cluster is set.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PgCluster {
  /** `postgres://postgres@127.0.0.1:PORT/postgres`: the cluster's maintenance DB. */
  url: string;
  port: number;
  dir: string;
  stop(): void;
}

const PREFIX = 'vftest-pg-';

/** The directory of Debian's PostgreSQL server binaries (highest version), or undefined. */
export function postgresBinDir(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(base, versions[0], 'bin') : undefined;
}

function needBin(): string {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: run `make setup` (installs Debian\'s postgresql)');
  return bin;
}

/** Run a server binary as the `postgres` user (initdb and the server refuse to run as root). */
function asPostgres(cmd: string, args: string[], opts: { timeout?: number } = {}): string {
  const argv = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] as const : [cmd, args] as const;
  return execFileSync(argv[0], [...argv[1]], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: opts.timeout ?? 60_000 });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const alive = (pid: number): boolean => {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

function stopDir(dir: string): void {
  const data = join(dir, 'data');
  const pidFile = join(data, 'postmaster.pid');
  if (existsSync(pidFile)) {
    try {
      asPostgres(join(needBin(), 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', '-t', '20', 'stop'], { timeout: 30_000 });
    } catch { // safe-catch: pg_ctl failed (already stopped, or a broken dir): kill the postmaster by its pid file
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      if (alive(pid)) process.kill(pid, 'SIGQUIT');
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

/** Clusters left by runs that died: found by pid file, stopped, removed. */
export function sweepStalePostgres(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = join(tmpdir(), name);
    let owner = 0;
    try {
      owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8').trim());
    } catch { /* safe-catch: no owner file: a cluster half made by a dead run */ }
    if (alive(owner)) continue;
    stopDir(dir);
  }
}

/** Start a private cluster (initdb as `postgres`, trust auth, 127.0.0.1 on a free port). */
export async function startPostgres(): Promise<PgCluster> {
  const bin = needBin();
  sweepStalePostgres();
  const dir = mkdtempSync(join(tmpdir(), PREFIX));
  writeFileSync(join(dir, 'owner.pid'), String(process.pid));
  const data = join(dir, 'data');
  mkdirSync(data, { mode: 0o700 });
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
    chownSync(data, uid, gid);
  }
  try {
    asPostgres(join(bin, 'initdb'), ['-D', data, '--auth=trust', '--username=postgres', '--encoding=UTF8', '--no-locale', '--no-sync'], { timeout: 120_000 });
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const o = `-c listen_addresses=127.0.0.1 -p ${port} -c unix_socket_directories=${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100`;
      try {
        asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), '-o', o, '-w', '-t', '60', 'start'], { timeout: 90_000 });
        const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
        return { url, port, dir, stop: () => stopDir(dir) };
      } catch (e) {
        if (attempt >= 3) throw new Error(`pg_ctl start failed: ${(e as Error).message}\n${readLog(dir)}`, { cause: e });
      }
    }
  } catch (e) {
    stopDir(dir);
    throw e;
  }
}

function readLog(dir: string): string {
  try {
    return readFileSync(join(dir, 'server.log'), 'utf8').slice(-2000);
  } catch { // safe-catch: no log written yet
    return '';
  }
}

/** Create a database on the cluster; returns its URL. */
export async function createDatabase(clusterUrl: string, name: string): Promise<string> {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`test database name ${name} must be [a-z0-9_]`);
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: clusterUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const u = new URL(clusterUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

let dbCounter = 0;

/**
 * Where a test's state DB lives: a new database on the run's private cluster when
 * `VIRTFORM_TEST_PG_URL` is set (make test-postgres), else `state.db` in `work`. Give the result to
 * `openStateStore` and to the CLI's `--db`.
 */
export async function testDbLocation(work: string): Promise<string> {
  const cluster = process.env.VIRTFORM_TEST_PG_URL;
  if (!cluster) return join(work, 'state.db');
  dbCounter += 1;
  return createDatabase(cluster, `vftest_${process.pid}_${dbCounter}`);
}

/** vitest globalSetup of `make test-postgres`: one cluster for the run, torn down after. */
export async function postgresGlobalSetup(): Promise<() => void> {
  const cluster = await startPostgres();
  process.env.VIRTFORM_TEST_PG_URL = cluster.url;
  process.env.VIRTFORM_TEST_PG_DIR = cluster.dir;
  const stop = (): void => cluster.stop();
  process.once('exit', stop);
  return () => {
    process.removeListener('exit', stop);
    stop();
  };
}
