/**
 * Idempotence as a property, small fixed budget (`make test`): random manifest sets applied to
 * qemu:///system one after the other; after each apply the second dry-run says "No changes." and
 * the read-back oracle agrees. See test/support/idempotence-property.ts; the larger budget runs in
 * `make test-faults` (test/faults/idempotence-property.test.ts).
 */
import { afterAll, beforeAll, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../support/manifests.js';
import { cleanupPrefix, ensureBuilt } from '../../support/real-host.js';
import { checkIdempotence, propertySettings } from '../../support/idempotence-property.js';

const P = 'vftest-prop-';
let work: string;

beforeAll(() => {
  cleanupPrefix(P);
  ensureBuilt();
  work = tempDir(P);
});
afterAll(() => {
  cleanupPrefix(P);
  if (work) rmSync(work, { recursive: true, force: true });
});

it('after any converging apply of a random manifest set, the second dry-run plans nothing and the host reads back equal', async () => {
  const { seed, runs } = propertySettings(4, 'test/integration/reconcile/idempotence-property.test.ts');
  await checkIdempotence({
    prefix: P, poolPath: `/var/lib/virtform-test/${P}pool`, cidr3: '10.213.14', work, db: join(work, 'state.db'), runs, seed,
  });
}, 300_000);
