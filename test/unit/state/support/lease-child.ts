/**
 * Child process for the writer-lease tests (run with `node --import tsx`).
 *   lease-child.ts <db> try    acquire; print ACQUIRED <pid> <epoch> and release, or print HELD <pid> <message> and exit 3
 *   lease-child.ts <db> hold   acquire; print ACQUIRED <pid> <epoch>, renew in the background, hold until stdin ends, release
 * <db> is a SQLite path or a postgres:// URL (when the store supports it).
 */
import { LeaseHeldError, openStateStore } from '../../../../src/state/index.js';

const [db, mode = 'try'] = process.argv.slice(2);
if (!db) {
  process.stderr.write('usage: lease-child.ts <db> try|hold\n');
  process.exit(2);
}
const store = await openStateStore(db);
try {
  const lease = await store.acquireLease({ command: `lease-child ${mode}` });
  process.stdout.write(`ACQUIRED ${lease.pid} ${lease.epoch}\n`);
  if (mode === 'hold') {
    lease.keepAlive();
    process.stdin.resume();
    await new Promise<void>((resolve) => process.stdin.on('end', () => resolve()));
  }
  await lease.release();
  await store.close();
  process.exit(0);
} catch (err) {
  await store.close();
  if (err instanceof LeaseHeldError) {
    process.stdout.write(`HELD ${err.holderPid} ${err.message}\n`);
    process.stderr.write(`${err.message}\n`);
    process.exit(3);
  }
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
}
