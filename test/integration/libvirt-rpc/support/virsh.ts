import { execFileSync } from 'node:child_process';

/** Runs `virsh -c URI ...args` and returns stdout. Throws with stderr on failure. */
export function virsh(uri: string, ...args: string[]): string {
  try {
    return execFileSync('virsh', ['-q', '-c', uri, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`virsh ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** Non-empty trimmed lines. */
export function lines(out: string): string[] {
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
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
  return lines(virsh(uri, 'list', ...flags)).map((l) => {
    const m = /^(\S+)\s+(\S+)\s+(.+)$/.exec(l);
    if (!m) throw new Error(`cannot parse virsh list line: ${l}`);
    return { id: m[1]!, name: m[2]!, state: m[3]!.trim() };
  });
}
