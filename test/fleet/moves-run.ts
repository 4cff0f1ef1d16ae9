/**
 * One reconcile run over two hosts in a child process (the SIGKILL crash matrix of
 * moves-crash.test.ts): `tsx test/fleet/moves-run.ts '<MoveRun as JSON>'`; prints the result as
 * JSON, or is killed with SIGKILL at boundary `crashAt` (src/reconcile/faults.ts).
 */
import { crashAtBoundary } from '../../src/reconcile/faults.js';
import { runMove, type MoveRun } from './moves-support.js';

const o = JSON.parse(process.argv[2] ?? '{}') as MoveRun;
let count = 0;
const crash = o.crashAt ? crashAtBoundary(o.crashAt, (l) => process.stderr.write(`[test] crashing at boundary ${o.crashAt}: ${l}\n`)) : undefined;
const result = await runMove(o, (label) => {
  count += 1;
  crash?.(label);
});
process.stdout.write(`${JSON.stringify({ ...result, boundaries: count })}\n`);
