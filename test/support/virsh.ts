/**
 * virsh for tests on the real libvirtd (inside a private test host `qemu:///system` is that
 * host's libvirtd): one helper instead of one per test file. Errors carry virsh's stderr.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const URI = 'qemu:///system';

const fail = (args: string[], err: unknown): Error => {
  const e = err as { stderr?: string | Buffer; message: string };
  return new Error(`virsh ${args.join(' ')} failed: ${String(e.stderr ?? '').trim() || e.message}`);
};

/** `virsh -q -c URI ...args` on another URI (the test driver, a TCP URI): stdout, throws with stderr. */
export function virshAt(uri: string, ...args: string[]): string {
  try {
    return execFileSync('virsh', ['-q', '-c', uri, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    throw fail(args, err);
  }
}

/** `virsh -q -c qemu:///system ...args`: stdout as virsh printed it; throws with virsh's stderr. */
export function virsh(...args: string[]): string {
  return virshAt(URI, ...args);
}

/** stdout trimmed, or '' when virsh fails (an object that may not exist, a daemon that may be down). */
export function tryVirsh(...args: string[]): string {
  return spawnSync('virsh', ['-q', '-c', URI, ...args], { encoding: 'utf8' }).stdout?.trim() ?? '';
}

/** Did `virsh ...args` exit 0? */
export function virshOk(...args: string[]): boolean {
  return spawnSync('virsh', ['-q', '-c', URI, ...args], { stdio: 'ignore' }).status === 0;
}

const run = promisify(execFile);
const CONNECTION = /Failed to connect|unable to connect|End of file while reading data|Cannot recv data/i;

/** Asynchronous virsh that waits out a libvirtd restarted by another suite (retries connection errors for ~10 s). */
export async function virshAsync(...args: string[]): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      return (await run('virsh', ['-q', '-c', URI, ...args], { maxBuffer: 16 * 1024 * 1024 })).stdout;
    } catch (e) {
      if (attempt < 20 && CONNECTION.test(String((e as { stderr?: string }).stderr ?? e))) {
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      throw fail(args, e);
    }
  }
}

/** Non-empty trimmed lines. */
export function lines(out: string): string[] {
  return out.split('\n').map((l) => l.trim()).filter(Boolean);
}

/** Parses `Key: value` output (dominfo, pool-info, vol-info). */
export function keyValues(out: string): Record<string, string> {
  const kv: Record<string, string> = {};
  for (const l of lines(out)) {
    const i = l.indexOf(':');
    if (i > 0) kv[l.slice(0, i).trim()] = l.slice(i + 1).trim();
  }
  return kv;
}

/** `virsh list --all` as {id, name, state}; id is '-' for inactive domains. */
export function virshDomains(uri: string, ...flags: string[]): { id: string; name: string; state: string }[] {
  return lines(virshAt(uri, 'list', ...flags)).map((l) => {
    const m = /^(\S+)\s+(\S+)\s+(.+)$/.exec(l);
    if (!m) throw new Error(`cannot parse virsh list line: ${l}`);
    return { id: m[1]!, name: m[2]!, state: m[3]!.trim() };
  });
}

/** `virsh domstate NAME`, trimmed ('' when the domain does not exist). */
export const domState = (name: string): string => tryVirsh('domstate', name);

/** The MACs of a network's static DHCP hosts (`<host mac=…>` in its live definition). */
export function dhcpHosts(net: string): string[] {
  return [...tryVirsh('net-dumpxml', net).matchAll(/<host mac='([^']+)'/g)].map((m) => m[1]!);
}

export interface Lease { mac: string; ip: string; prefix: number; hostname: string; expiry: string }

/** `virsh net-dhcp-leases NET`, IPv4 rows (expiry as virsh prints it, `YYYY-MM-DD HH:MM:SS`). */
export function dhcpLeases(net: string): Lease[] {
  // "2026-12-01 19:31:56   52:54:00:34:8e:aa   ipv4   192.168.247.141/24   host   01:52:..."
  return virsh('net-dhcp-leases', net).split('\n').map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 5 && f[3] === 'ipv4')
    .map((f) => {
      const [ip, prefix] = f[4]!.split('/');
      return { expiry: `${f[0]} ${f[1]}`, mac: f[2]!, ip: ip!, prefix: Number(prefix), hostname: f[5] ?? '-' };
    });
}

/** `virsh dommemstat NAME` as numbers (KiB): actual, rss, … */
export function domMemStat(name: string): Record<string, number> {
  return Object.fromEntries(lines(virsh('dommemstat', name)).map((l) => l.split(/\s+/)).filter((f) => f.length === 2).map((f) => [f[0]!, Number(f[1])]));
}

/**
 * Redefines a domain's persistent definition with `edit` applied to its XML (what `virsh edit`
 * does); the edit must change it. The file goes to `dir`.
 */
export function redefineDomain(name: string, edit: (xml: string) => string, dir: string): void {
  const file = join(dir, 'edited.xml');
  const xml = virsh('dumpxml', '--inactive', name);
  const next = edit(xml);
  if (next === xml) throw new Error(`redefineDomain ${name}: the edit changed nothing`);
  writeFileSync(file, next);
  virsh('define', file);
}
