/** Small pieces several kind modules share. */
import type { HostSnapshot } from '../ports.js';
import type { ExecContext } from './types.js';

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

/** `active`/`inactive`/`absent` of a listed object (pools, networks), or `unknown` without a snapshot. */
export function listedState(
  snapshot: HostSnapshot | undefined,
  list: (s: HostSnapshot) => { name: string; active: boolean }[],
  name: string,
  active = 'active',
  inactive = 'inactive',
): string {
  if (!snapshot) return 'unknown';
  const o = list(snapshot).find((x) => x.name === name);
  if (!o) return 'absent';
  return o.active ? active : inactive;
}
