/** Small pieces several kind modules share. */
import type { DefinitionRead, HostSnapshot, UnparsedDefinition } from '../ports.js';
import type { ExecContext, Wanted } from '../core/kind.js';
import type { Definition, Observed } from '../core/observed.js';

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
  wanted: Map<string, Wanted>,
  read: (list: O[], unreadable: Map<string, string>, fast?: DefinitionRead<D>) => Promise<Map<string, D>>,
  unreadable: Map<string, string>,
  /** The no-op fast path: definitions whose bytes are `known` stay unparsed in `observed.unparsed`. */
  fast?: Observed,
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
  const dr = fast ? fastRead<D>(wanted, (_key, w) => w.name) : undefined;
  for (const [name, d] of await read(list, bad, dr)) out.set(keyByName.get(name)!, d);
  for (const [name, why] of bad) unreadable.set(keyByName.get(name)!, why);
  if (fast && dr) keepFastRead(fast, dr, (name) => keyByName.get(name));
  return out;
}

/** A {@link DefinitionRead} for the wanted resources with a `known` digest, by the id the host reads by. */
export function fastRead<D>(wanted: Map<string, Wanted>, idOf: (key: string, w: Wanted) => string | undefined): DefinitionRead<D> {
  const digestOf = new Map<string, () => string | undefined>();
  for (const [key, w] of wanted) {
    const id = w.known !== undefined ? idOf(key, w) : undefined;
    if (id !== undefined) digestOf.set(id, w.known!);
  }
  return { known: new KnownOnDemand(digestOf), digests: new Map(), unparsed: new Map() };
}

/**
 * The `known` of a fast read: each id's digest computed when first asked (the host's read asks as
 * each definition arrives) and kept. Only `get` and `has` are meaningful (all a read asks).
 */
class KnownOnDemand extends Map<string, string> {
  constructor(private readonly digestOf: ReadonlyMap<string, () => string | undefined>) {
    super();
  }

  override get(id: string): string | undefined {
    if (!super.has(id)) {
      const digest = this.digestOf.get(id)?.();
      if (digest === undefined) return undefined;
      super.set(id, digest);
    }
    return super.get(id);
  }

  override has(id: string): boolean {
    return this.get(id) !== undefined;
  }
}

/** What a fast read found, by resource key, into `observed.digests` and `observed.unparsed`. */
export function keepFastRead<D>(observed: Observed, dr: DefinitionRead<D>, keyOf: (id: string) => string | undefined): void {
  const digests = (observed.digests ??= new Map());
  for (const [id, sha] of dr.digests) {
    const key = keyOf(id);
    if (key !== undefined) digests.set(key, sha);
  }
  for (const [id, u] of dr.unparsed) {
    const key = keyOf(id);
    if (key !== undefined) (observed.unparsed ??= new Map()).set(key, u as unknown as UnparsedDefinition<Definition>);
  }
}
