/**
 * Child process for the state-DB open error tests (run with `node --import tsx`, as an unprivileged
 * user when the tests run as root): open-child.ts <dbPath> opens the DB and prints OPENED, or
 * ERROR <message> and exits 1.
 */
import { openStateStore } from '../../../../src/state/index.js';

const [dbPath] = process.argv.slice(2);
try {
  const store = await openStateStore(dbPath!);
  await store.close();
  process.stdout.write('OPENED\n');
} catch (e) {
  process.stdout.write(`ERROR ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
