/** What the URL-import suites (test/integration/reconcile/url-source, url-policy) read back from the host. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { virsh } from './virsh.js';

/** The volumes of the pool `<prefix>-pool` whose names start with `prefix`, sorted; none when the pool is gone. */
export function suiteVolumes(prefix: string): string[] {
  try {
    return virsh('vol-list', '--pool', `${prefix}-pool`).split('\n').map((l) => l.trim().split(/\s+/)[0]!).filter((v) => v.startsWith(prefix)).sort();
  } catch {
    return [];
  }
}

/** The files of the image cache beside a state DB (`images/` in the DB's folder). */
export const cacheFiles = (db: string): string[] => (existsSync(join(db, '..', 'images')) ? readdirSync(join(db, '..', 'images')) : []);
