/**
 * qemu+ssh and qemu+tls against a real libvirtd: a namespace test host (scripts/test-host.sh) with
 * an sshd the test runs inside it (virt-ssh-helper there reaches that host's libvirtd, not the
 * machine's) and its libvirtd listening for TLS with certificates the test made (openssl), only
 * the good client's DN allowed. Through virtform's client and through the CLI: ssh and TLS work
 * (list, define, a small reconcile, status); a wrong host key, a wrong CA and a refused client
 * certificate give clear errors; plain tcp to the host and no_verify without --insecure exit 2.
 * Also measures the connect latency of ssh, TLS and plain tcp (median of 5).
 */
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LibvirtClient } from '../../src/libvirt/index.js';
import { ensureBuilt, runCli, startWatch, waitFor } from '../support/cli.js';
import { writeManifests } from '../support/manifests.js';
import { suiteNames } from '../support/names.js';
import { type TestHost, testHostDown, testHostsCleanup, testHostUp } from '../support/test-host.js';
import { enableTls, makePki, type Pki, type Sshd, startSshd } from '../support/transport-host.js';

const N = suiteNames('transport');
const HOST = 'vfcitr';
const doc = (s: string): string => `apiVersion: virtform.dev/v1\n${s}\n`;

let host: TestHost;
let sshd: Sshd;
let pki: Pki;
let work: string;

const tlsUri = (pkipath: string, extra = ''): string => `qemu+tls://${host.addr}/system?pkipath=${pkipath}${extra}`;

/** The ssh processes this test process started that are still there (zombies included). */
function sshChildren(): string[] {
  const out = execFileSync('ps', ['-o', 'pid=,stat=,comm=', '--ppid', String(process.pid)], { encoding: 'utf8' }).trim();
  return out.split('\n').filter((l) => /\bssh$/.test(l.trim()));
}

function manifests(dir: string, tag: string): string {
  return writeManifests(dir, {
    'env.yaml': [
      `kind: StoragePool\nmetadata: {name: ${N.name(`${tag}-pool`)}}\nspec: {path: ${N.poolPath(`${tag}-pool`)}}`,
      `kind: Volume\nmetadata: {name: ${N.name(`${tag}-disk`)}}\nspec: {pool: ${N.name(`${tag}-pool`)}, capacity: 4MiB, format: raw}`,
      `kind: VirtualMachine\nmetadata: {name: ${N.name(`${tag}-vm`)}}\nspec:\n  vcpus: 1\n  memory: 64MiB\n  state: stopped\n  disks: [{volume: ${N.name(`${tag}-disk`)}}]\n  nics: []`,
    ].map(doc).join('---\n'),
  });
}

beforeAll(() => {
  ensureBuilt();
  testHostsCleanup(HOST); // left by a killed run
  host = testHostUp(HOST);
  work = N.tempDir();
  sshd = startSshd(host, join(work, 'ssh'));
  pki = makePki(join(work, 'pki'), host.addr);
  enableTls(host, pki);
}, 240_000);

afterAll(() => {
  sshd?.stop();
  testHostDown(HOST);
  if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

describe('qemu+ssh', () => {
  it("reaches the test host's own libvirtd through its sshd: list, define, undefine; the ssh child is gone after close", async () => {
    const c = await LibvirtClient.connect(sshd.uri(), { keepaliveIntervalMs: 0 });
    const name = N.name('sshdef');
    await c.domainDefineXml(`<domain type='qemu'><name>${name}</name><memory unit='MiB'>32</memory><os><type>hvm</type></os></domain>`);
    expect((await c.connectListAllDomains(0)).map((d) => d.name)).toContain(name);
    // Defined in THAT host (its private /etc/libvirt), seen by virsh inside it.
    expect(host.virsh('list', '--all', '--name')).toContain(name);
    await c.domainUndefine(await c.domainLookupByName(name));
    expect(sshChildren().length).toBe(1);
    await c.close();
    await new Promise((r) => setTimeout(r, 300));
    expect(sshChildren()).toEqual([]);
  });

  it('without virt-ssh-helper: nc -U to the socket (proxy=netcat, as libvirt before virt-ssh-helper)', async () => {
    const c = await LibvirtClient.connect(sshd.uri('proxy=netcat'), { keepaliveIntervalMs: 0 });
    expect(typeof (await c.connectGetHostname())).toBe('string');
    await c.close();
  });

  it('a small reconcile, status and a converged rerun through the CLI', async () => {
    host.execOk(['mkdir', '-p', N.poolPath('ssh-pool')]);
    const dir = manifests(join(work, 'm-ssh'), 'ssh');
    const db = join(work, 'ssh.db');
    const args = ['--db', db, '--uri', sshd.uri()];
    const r = await runCli(['reconcile', dir, ...args]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(host.virsh('list', '--all', '--name')).toContain(N.name('ssh-vm'));
    expect(host.virsh('vol-list', N.name('ssh-pool'))).toContain(N.name('ssh-disk'));
    const st = await runCli(['status', dir, ...args, '--json']);
    expect(st.code, st.stdout + st.stderr).toBe(0);
    expect(st.stdout).toContain(N.name('ssh-vm'));
    // The key file's path is in the URI; nothing secret is: the URI as stored is the URI as given.
    const dry = await runCli(['reconcile', dir, ...args, '--dry-run', '--detailed-exitcode']);
    expect(dry.code, dry.stdout + dry.stderr).toBe(0);
  }, 180_000);

  it('watch over ssh: the ssh process killed → reconnects with a new one and converges a change; none left after it stops', async () => {
    const dir = manifests(join(work, 'm-ssh'), 'ssh'); // converged by the test above
    const w = await startWatch([dir, '--db', join(work, 'ssh.db'), '--uri', sshd.uri(), '--resync', '3600'], 120_000);
    try {
      await w.waitForLog('connected');
      const children = (): number[] => execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(w.child.pid)], { encoding: 'utf8' })
        .split('\n').filter((l) => /\bssh$/.test(l.trim())).map((l) => Number(l.trim().split(/\s+/)[0]));
      const [first] = children();
      expect(first).toBeGreaterThan(0);
      process.kill(first!, 'SIGKILL');
      const lost = await w.waitForLog('disconnected from libvirtd', undefined, 30_000);
      expect(String(lost.error)).toMatch(/ssh process .* was ended by SIGKILL/);
      await w.waitForLog('reconnected', undefined, 60_000);
      expect(children()).toHaveLength(1);
      expect(children()[0]).not.toBe(first);
      // A change after the reconnect is applied through the new ssh.
      writeFileSync(join(dir, 'more.yaml'), doc(`kind: Volume\nmetadata: {name: ${N.name('ssh-more')}}\nspec: {pool: ${N.name('ssh-pool')}, capacity: 1MiB, format: raw}`));
      await waitFor(() => host.virsh('vol-list', N.name('ssh-pool')).includes(N.name('ssh-more')), 'the volume applied by watch over ssh', 120_000);
    } finally {
      expect(await w.stop()).toBe(0);
    }
    // ssh ended with the watcher (nothing of it reparented and left running).
    const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('ssh ') && l.includes(sshd.knownHosts));
    expect(left).toEqual([]);
  }, 300_000);

  it('a wrong host key: "host key verification failed for HOST: check known_hosts FILE", exit 1', async () => {
    const uri = sshd.uri().replace(`known_hosts=${sshd.knownHosts}`, `known_hosts=${sshd.wrongKnownHosts}`);
    await expect(LibvirtClient.connect(uri, { keepaliveIntervalMs: 0 })).rejects.toThrow(
      new RegExp(`host key verification failed for ${host.addr.replace(/\./g, '\\.')}: check known_hosts ${sshd.wrongKnownHosts}`),
    );
    const r = await runCli(['status', '--uri', uri, '--db', join(work, 'ssh.db')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/host key verification failed for .*check known_hosts .*known_hosts\.wrong/);
  });

  it('no accepted key, nothing listening, neither virt-ssh-helper nor nc: clear errors', async () => {
    const base = `qemu+ssh://root@${host.addr}:${sshd.port}/system?known_hosts=${sshd.knownHosts}`;
    await expect(LibvirtClient.connect(`${base}&keyfile=${join(work, 'ssh', 'impostor_host')}`, { keepaliveIntervalMs: 0 }))
      .rejects.toThrow(/ssh authentication to root@.* failed \(server accepts: publickey\)/);
    await expect(LibvirtClient.connect(base.replace(`:${sshd.port}/`, ':2223/'), { keepaliveIntervalMs: 0 }))
      .rejects.toThrow(new RegExp(`ssh connection to ${host.addr.replace(/\./g, '\\.')} port 2223 refused`));
    await expect(LibvirtClient.connect(sshd.uri('netcat=vftest-no-such-nc'), { keepaliveIntervalMs: 0 }))
      .rejects.toThrow(/has neither virt-ssh-helper nor vftest-no-such-nc/);
    await expect(LibvirtClient.connect(sshd.uri('socket=/var/run/libvirt/vftest-no-such-sock'), { keepaliveIntervalMs: 0 }))
      .rejects.toThrow(/the remote host .* runs no reachable libvirtd \(nc: \/var\/run\/libvirt\/vftest-no-such-sock: No such file/);
  });

  it('no_verify=1 needs --insecure (exit 2, nothing contacted)', async () => {
    const r = await runCli(['status', '--uri', sshd.uri('no_verify=1'), '--db', join(work, 'none.db')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no_verify=1 turns off the check of the server's host key.*--insecure/);
  });
});

describe('qemu+tls', () => {
  it('connects with the CA and client certificate of pkipath; a small reconcile through the CLI', async () => {
    const c = await LibvirtClient.connect(tlsUri(pki.good), { keepaliveIntervalMs: 0 });
    expect(typeof (await c.connectGetHostname())).toBe('string');
    await c.close();
    host.execOk(['mkdir', '-p', N.poolPath('tls-pool')]);
    const dir = manifests(join(work, 'm-tls'), 'tls');
    const args = ['--db', join(work, 'tls.db'), '--uri', tlsUri(pki.good)];
    const r = await runCli(['reconcile', dir, ...args]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(host.virsh('list', '--all', '--name')).toContain(N.name('tls-vm'));
    const dry = await runCli(['reconcile', dir, ...args, '--dry-run', '--detailed-exitcode']);
    expect(dry.code, dry.stdout + dry.stderr).toBe(0);
  }, 180_000);

  it('a server certificate of another CA: names the CA file', async () => {
    await expect(LibvirtClient.connect(tlsUri(pki.otherca), { keepaliveIntervalMs: 0 })).rejects.toThrow(
      new RegExp(`the certificate of ${host.addr.replace(/\./g, '\\.')} is not signed by the CA in ${pki.otherca}/cacert\\.pem`),
    );
  });

  it("a client certificate the server refuses (its DN not in tls_allowed_dn_list, or of a CA it does not trust): read at the check byte", async () => {
    await expect(LibvirtClient.connect(tlsUri(pki.intruder), { keepaliveIntervalMs: 0 })).rejects.toThrow(
      new RegExp(`the server ${host.addr.replace(/\./g, '\\.')} refused our client certificate ${pki.intruder}/clientcert\\.pem`),
    );
    // The right CN, signed by a CA the server does not trust: refused too.
    await expect(LibvirtClient.connect(tlsUri(pki.foreign), { keepaliveIntervalMs: 0 })).rejects.toThrow(
      new RegExp(`the server ${host.addr.replace(/\./g, '\\.')} refused our client certificate ${pki.foreign}/clientcert\\.pem`),
    );
    const r = await runCli(['status', '--uri', tlsUri(pki.intruder), '--db', join(work, 'tls.db')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refused our client certificate .*tls_allowed_dn_list/);
  });

  it('no_verify=1 needs --insecure; with it the CA check is skipped', async () => {
    const uri = tlsUri(pki.otherca, '&no_verify=1');
    const r = await runCli(['reconcile', join(work, 'm-tls'), '--dry-run', '--uri', uri, '--db', join(work, 'tls.db')]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/no_verify=1 turns off the check of the server's certificate/);
    const ok = await runCli(['reconcile', join(work, 'm-tls'), '--dry-run', '--detailed-exitcode', '--insecure', '--uri', uri, '--db', join(work, 'tls.db')]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
  }, 120_000);
});

describe('plain tcp', () => {
  it('to the test host without --insecure: exit 2 saying why; with it: works', async () => {
    const dir = join(work, 'm-tls');
    const args = ['reconcile', dir, '--dry-run', '--detailed-exitcode', '--uri', host.uri, '--db', join(work, 'tls.db')];
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refusing plain TCP to 10\.251\.\d+\.2 .*unencrypted.*qemu\+tls:\/\/.*qemu\+ssh:\/\/.*--insecure/);
    const ok = await runCli([...args, '--insecure']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
  }, 120_000);
});

describe('connect latency', () => {
  it('ssh vs TLS vs plain tcp (median of 5 connect + close)', async () => {
    const median = async (uri: string): Promise<number> => {
      const ms: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        const c = await LibvirtClient.connect(uri, { keepaliveIntervalMs: 0 });
        ms.push(performance.now() - t);
        await c.close();
      }
      return ms.sort((a, b) => a - b)[2]!;
    };
    const ssh = await median(sshd.uri());
    const tls = await median(tlsUri(pki.good));
    const tcp = await median(host.uri);
    console.log(`[transport] connect latency, median of 5: ssh ${ssh.toFixed(0)} ms, tls ${tls.toFixed(0)} ms, tcp ${tcp.toFixed(0)} ms`);
    expect(ssh).toBeLessThan(10_000);
  }, 120_000);
});
