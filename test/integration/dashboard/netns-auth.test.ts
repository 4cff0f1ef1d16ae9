/**
 * A listener on a non-loopback address (issue 23), tested inside a network namespace of the
 * test's own (all of 127.0.0.0/8 is loopback): a veth pair with 10.252.146.1 in netns
 * `vftest-dashnet`, the watcher started in it with `ip netns exec`, curl from inside.
 *   - without --http-token-file and TLS: refused, exit 2, nothing listens;
 *   - with both: HTTPS; /healthz open; /status, /metrics, /readyz, /api/v1/* and / answer 401
 *     without the token, 200 with it or with the session cookie exchanged for it.
 * The same for the fleet watch (a folder with a Host manifest: src/fleet/watch-status.ts serves it).
 * The namespace is removed by name before and after, even after a failure.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeManifests } from '../../support/manifests.js';
import { CLI, ensureBuilt, spawnWatch, waitFor, type Watcher } from '../../support/cli.js';
import { suiteNames } from '../../support/names.js';
import { scenario } from '../../support/scenario.js';
import { URI } from '../../support/virsh.js';

const N = suiteNames('dashnet');
// The namespace's name is the suite's base name (vftest-dashnet).
const NS = N.base;
const ADDR = '10.252.146.1';
const TOKEN = 'dashnet-token-0123456789abcdef';

const ip = (...args: string[]): void => void execFileSync('ip', args, { stdio: 'pipe' });
const inNs = (cmd: string[]): string[] => ['ip', 'netns', 'exec', NS, ...cmd];
function removeNs(): void {
  spawnSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
}

/** curl inside the namespace: [HTTP code, body, headers]. */
function curl(path: string, o: { token?: string; cookie?: string; method?: string; data?: string; port: number }): { code: number; body: string; headers: string } {
  const args = ['curl', '-sS', '--max-time', '10', '--cacert', join(work, 'cert.pem'), '-D', '-', '-o', join(work, 'body'), '-w', '%{http_code}',
    ...(o.token ? ['-H', `Authorization: Bearer ${o.token}`] : []), ...(o.cookie ? ['-H', `Cookie: ${o.cookie}`] : []),
    ...(o.method ? ['-X', o.method] : []), ...(o.data !== undefined ? ['--data', o.data] : []),
    `https://${ADDR}:${o.port}${path}`];
  rmSync(join(work, 'body'), { force: true });
  const wrapped = inNs(args);
  const out = spawnSync(wrapped[0]!, wrapped.slice(1), { encoding: 'utf8' }).stdout;
  const code = Number(out.slice(-3));
  let body = '';
  try {
    body = readFileSync(join(work, 'body'), 'utf8');
  } catch { /* safe-catch: no body written */ }
  return { code, body, headers: out.slice(0, -3) };
}

let work: string;
let w: Watcher | undefined;
let port = 0;

beforeAll(async () => {
  removeNs();
  N.cleanup();
  ensureBuilt();
  work = N.tempDir();
  ip('netns', 'add', NS);
  ip('netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up');
  ip('netns', 'exec', NS, 'ip', 'link', 'add', 'vfdn0', 'type', 'veth', 'peer', 'name', 'vfdn1');
  ip('netns', 'exec', NS, 'ip', 'addr', 'add', `${ADDR}/24`, 'dev', 'vfdn0');
  ip('netns', 'exec', NS, 'ip', 'link', 'set', 'vfdn0', 'up');
  ip('netns', 'exec', NS, 'ip', 'link', 'set', 'vfdn1', 'up');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(work, 'key.pem'), '-out', join(work, 'cert.pem'),
    '-days', '1', '-subj', `/CN=${ADDR}`, '-addext', `subjectAltName=IP:${ADDR}`], { stdio: 'ignore' });
  writeFileSync(join(work, 'token'), `${TOKEN}\n`, { mode: 0o600 });
  writeManifests(join(work, 'm'), scenario().in('pool.yaml').pool(`${N.base}-pool`, { path: N.poolPath(), autostart: false }).files());
}, 60_000);

afterAll(async () => {
  if (w && w.exitCode === undefined) await w.stop();
  removeNs();
  N.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('a non-loopback listener, inside a network namespace', () => {
  it('is refused without --http-token-file and TLS: exit 2, a clear message', () => {
    const base = [process.execPath, CLI, 'watch', join(work, 'm'), '--uri', URI, '--db', join(work, 'refused.db'), '--listen', `${ADDR}:0`];
    const plain = spawnSync('ip', ['netns', 'exec', NS, ...base], { encoding: 'utf8', timeout: 30_000 });
    expect(plain.status).toBe(2);
    expect(plain.stderr).toMatch(/refusing to listen on 10\.252\.146\.1: a non-loopback address needs --http-token-file and --http-tls-cert and --http-tls-key/);
    const tokenOnly = spawnSync('ip', ['netns', 'exec', NS, ...base, '--http-token-file', join(work, 'token')], { encoding: 'utf8', timeout: 30_000 });
    expect(tokenOnly.status).toBe(2);
    expect(tokenOnly.stderr).toMatch(/needs --http-tls-cert and --http-tls-key/);
  });

  it('with a token and TLS: /healthz open, everything else 401 without the token, 200 with it or the session cookie', async () => {
    w = spawnWatch([join(work, 'm'), '--uri', URI, '--db', join(work, 'state.db'), '--listen', `${ADDR}:0`,
      '--http-token-file', join(work, 'token'), '--http-tls-cert', join(work, 'cert.pem'), '--http-tls-key', join(work, 'key.pem')], { wrap: inNs([]) });
    const l = await w.waitForLog('listening');
    expect(l).toMatchObject({ host: ADDR, auth: true, tls: true, url: expect.stringMatching(/^https:\/\/10\.252\.146\.1:\d+\/$/) });
    port = Number(l.port);
    expect(curl('/healthz', { port }).code).toBe(200);
    await waitFor(() => curl('/readyz', { port, token: TOKEN }).code === 200, 'ready', 60_000);
    for (const p of ['/readyz', '/status', '/metrics', '/api/v1/overview', '/api/v1/resources', '/api/v1/events', '/']) {
      const r = curl(p, { port });
      expect(r.code, p).toBe(401);
      expect(r.headers, p).toMatch(/content-security-policy: default-src 'none'/i);
      expect(curl(p, { port, token: 'wrong-token-wrong-token' }).code, p).toBe(401);
    }
    const st = curl('/status', { port, token: TOKEN });
    expect(st.code).toBe(200);
    expect(JSON.parse(st.body)).toMatchObject({ ready: true, resources: [expect.objectContaining({ kind: 'StoragePool' })] });
    expect(curl('/api/v1/overview', { port, token: TOKEN }).code).toBe(200);
    // the browser's way: the token once for a cookie (Secure under TLS), then the cookie
    const s = curl('/api/v1/session', { port, method: 'POST', token: TOKEN });
    expect(s.code).toBe(200);
    const set = /^set-cookie: (vf_session=[^;]+);(.*)$/im.exec(s.headers);
    expect(set).not.toBeNull();
    expect(set![2]).toMatch(/HttpOnly; Secure; SameSite=Strict; Path=\//);
    expect(curl('/api/v1/overview', { port, cookie: set![1] }).code).toBe(200);
    expect(curl('/metrics', { port, cookie: set![1] }).code).toBe(200);
    // a Host header that is not the listen address: 421 (DNS rebinding), even with the token
    const rebound = spawnSync('ip', ['netns', 'exec', NS, 'curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', join(work, 'cert.pem'),
      '-H', `Host: evil.example:${port}`, '-H', `Authorization: Bearer ${TOKEN}`, `https://${ADDR}:${port}/status`], { encoding: 'utf8' });
    expect(rebound.stdout).toBe('421');
    expect(await w.stop()).toBe(0);
  });

  it('the fleet watch (Host manifests) too: 401 without the token, the dashboard API with it, its runs in the history', async () => {
    const fleet = join(work, 'fleet');
    writeManifests(fleet, {
      ...scenario().in('pool.yaml').pool(`${N.base}-fpool`, { path: N.poolPath('fpool'), autostart: false }).files(),
      'host.yaml': `apiVersion: virtform.dev/v1\nkind: Host\nmetadata: {name: h1}\nspec: {uri: "${URI}"}\n`,
    });
    const refused = spawnSync('ip', ['netns', 'exec', NS, process.execPath, CLI, 'watch', fleet, '--db', join(work, 'fleet-refused.db'), '--listen', `${ADDR}:0`], { encoding: 'utf8', timeout: 30_000 });
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/refusing to listen on 10\.252\.146\.1: a non-loopback address needs --http-token-file/);
    w = spawnWatch([fleet, '--db', join(work, 'fleet.db'), '--listen', `${ADDR}:0`,
      '--http-token-file', join(work, 'token'), '--http-tls-cert', join(work, 'cert.pem'), '--http-tls-key', join(work, 'key.pem')], { wrap: inNs([]) });
    const l = await w.waitForLog('listening', undefined, 60_000);
    port = Number(l.port);
    await waitFor(() => curl('/readyz', { port, token: TOKEN }).code === 200, `fleet ready\n${w!.tail()}`, 120_000);
    for (const p of ['/status', '/metrics', '/api/v1/overview', '/api/v1/runs']) expect(curl(p, { port }).code, p).toBe(401);
    expect(curl('/healthz', { port }).code).toBe(200);
    const ov = curl('/api/v1/overview', { port, token: TOKEN });
    expect(ov.code).toBe(200);
    expect(JSON.parse(ov.body)).toMatchObject({ total: 1, hosts: [expect.objectContaining({ id: 'h1', connected: true })], lastRun: expect.objectContaining({ outcome: 'succeeded' }) });
    const res = JSON.parse(curl('/api/v1/resources', { port, token: TOKEN }).body) as { items: { key: string; host: string; status: string }[] };
    expect(res.items).toEqual([expect.objectContaining({ host: 'h1', status: 'Ready' })]);
    const runs = JSON.parse(curl('/api/v1/runs', { port, token: TOKEN }).body) as { total: number; items: { outcome: string; id: string }[] };
    expect(runs.total).toBeGreaterThanOrEqual(1);
    expect(runs.items.at(-1)!.outcome).toBe('succeeded');
    const run = JSON.parse(curl(`/api/v1/runs/${runs.items.at(-1)!.id}`, { port, token: TOKEN }).body) as { steps: { op: string; host: string }[] };
    expect(run.steps.map((x) => `${x.host}:${x.op}`)).toContain('h1:pool.ensure');
    expect(await w.stop()).toBe(0);
  });
});
