/**
 * `virtform suspend` / `virtform resume`: pause and continue applies for a state DB.
 *
 * The switch is a row in the DB's `controls` table, written WITHOUT the writer lock: a watcher
 * holds that lock for its whole life, and suspending is how one pauses it without stopping it. A
 * watcher reads the switch before every run (and polls it, so a resume is picked up at once):
 * while suspended it keeps observing and planning, reports what it would do, and applies nothing.
 * `virtform reconcile` refuses to apply on a suspended DB (exit 1) unless `--ignore-suspend`.
 * The switch is in the DB, so it survives watcher restarts and reboots.
 */
import { EXIT, errorMessage, openStore, whoAmI } from '../common.js';
import { StateDbMissingError, type StateStore } from '../../state/index.js';
import { suspendedText } from './reconcile.js';

export { whoAmI } from '../common.js';

/**
 * Open the DB, run `fn` on it and close it: exit 0, or 1 with `virtform: cannot VERB DB: error`
 * (a DB that cannot be opened: `virtform: error`).
 */
async function withStore(db: string | undefined, mustExist: boolean, verb: string, fn: (store: StateStore) => Promise<void>): Promise<number> {
  let store: StateStore;
  try {
    store = await openStore(db, { mustExist });
  } catch (e) {
    process.stderr.write(`virtform: ${e instanceof StateDbMissingError ? e.message : errorMessage(e)}\n`);
    return EXIT.failure;
  }
  try {
    await fn(store);
    return EXIT.ok;
  } catch (e) {
    process.stderr.write(`virtform: cannot ${verb} ${store.path}: ${errorMessage(e)}\n`);
    return EXIT.failure;
  } finally {
    await store.close();
  }
}

export async function runSuspend(o: { db?: string; reason?: string; json?: boolean }): Promise<number> {
  return withStore(o.db, false, 'suspend', async (store) => {
    const { suspension, already } = await store.controls.suspend({ by: whoAmI(), reason: o.reason ?? null });
    if (o.json) process.stdout.write(`${JSON.stringify({ db: store.path, suspended: true, already, suspension }, null, 2)}\n`);
    else {
      process.stdout.write(already
        ? `Already suspended: ${suspendedText(store.path, suspension)}.\n`
        : `Suspended: ${suspendedText(store.path, suspension)}.\nApplies are paused (a watcher keeps observing); \`virtform resume\` continues.\n`);
    }
  });
}

export async function runResume(o: { db?: string; json?: boolean }): Promise<number> {
  return withStore(o.db, true, 'resume', async (store) => {
    const was = await store.controls.resume();
    if (o.json) process.stdout.write(`${JSON.stringify({ db: store.path, suspended: false, resumed: was ?? null }, null, 2)}\n`);
    else process.stdout.write(was ? `Resumed: ${store.path} was suspended since ${was.since}, by ${was.by}; applies continue.\n` : `Not suspended: ${store.path}.\n`);
  });
}
