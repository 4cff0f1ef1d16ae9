/** Small pieces several kind modules share. */
import type { HostSnapshot } from '../ports.js';
import type { ExecContext, Locator } from '../core/kind.js';

/**
 * UUID to define an object with: the observed one (none when replacing it); on a retry, the
 * current one, since the failed attempt may have created the object already.
 */
export async function uuidToDefine(
  ctx: ExecContext<unknown>,
  observedUuid: string | undefined,
  current: () => Promise<{ uuid: string } | null>,
): Promise<string | undefined> {
  if (ctx.attempt === 1) return ctx.replacing ? undefined : observedUuid;
  return (await current())?.uuid;
}

/** `active`/`inactive`/`absent` of a listed object (pools, networks, domains). */
export function listedState(
  snapshot: HostSnapshot,
  list: (s: HostSnapshot) => { name: string; active: boolean }[],
  name: string,
  active = 'active',
  inactive = 'inactive',
): string {
  const o = list(snapshot).find((x) => x.name === name);
  if (!o) return 'absent';
  return o.active ? active : inactive;
}

/**
 * Definitions of listed objects (pools, networks, domains) for the wanted resources, by key:
 * only objects the bulk listing shows are read, one call each. Objects whose definition cannot be
 * parsed go to `unreadable` (by key, with the reason) instead of failing the read.
 */
export async function readListed<O extends { name: string }, D>(
  listed: Map<string, O>,
  wanted: Map<string, { name: string; where: Locator }>,
  read: (list: O[], unreadable: Map<string, string>) => Promise<Map<string, D>>,
  unreadable: Map<string, string>,
): Promise<Map<string, D>> {
  const keyByName = new Map<string, string>();
  const list: O[] = [];
  for (const [key, w] of wanted) {
    const o = listed.get(w.name);
    if (o && !keyByName.has(w.name)) {
      keyByName.set(w.name, key);
      list.push(o);
    }
  }
  const out = new Map<string, D>();
  if (list.length === 0) return out;
  const bad = new Map<string, string>();
  for (const [name, d] of await read(list, bad)) out.set(keyByName.get(name)!, d);
  for (const [name, why] of bad) unreadable.set(keyByName.get(name)!, why);
  return out;
}
