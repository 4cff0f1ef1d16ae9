/**
 * Child process for the writer-lock tests (run with `node --import tsx`).
 *   lock-child.ts <dbPath> try    acquire; print ACQUIRED and release, or print HELD <message> and exit 3
 *   lock-child.ts <dbPath> hold   acquire; print ACQUIRED, hold until stdin ends, release; HELD → exit 3
 */
import { LockHeldError, openStateStore } from '../../../../src/state/index.js';

const [dbPath, mode = 'try'] = process.argv.slice(2);
if (!dbPath) {
  process.stderr.write('usage: lock-child.ts <dbPath> try|hold\n');
  process.exit(2);
}
const store = await openStateStore(dbPath);
try {
  const lock = await store.acquireWriterLock({ command: `lock-child ${mode}` });
  process.stdout.write(`ACQUIRED ${lock.pid}\n`);
  if (mode === 'hold') {
    process.stdin.resume();
    await new Promise<void>((resolve) => process.stdin.on('end', () => resolve()));
  }
  await lock.release();
  await store.close();
  process.exit(0);
} catch (err) {
  await store.close();
  if (err instanceof LockHeldError) {
    process.stdout.write(`HELD ${err.holderPid} ${err.message}\n`);
    process.stderr.write(`${err.message}\n`);
    process.exit(3);
  }
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
}
