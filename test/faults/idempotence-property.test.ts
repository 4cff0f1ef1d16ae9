/**
 * Idempotence as a property, larger budget (`make test-faults`): the same property as
 * test/integration/reconcile/idempotence-property.test.ts (random manifest sets applied one after
 * the other; the second dry-run plans nothing; the read-back oracle agrees), 30 sets by default
 * (`VIRTFORM_PROPERTY_RUNS`; `VIRTFORM_PROPERTY_SEED` replays a printed seed).
 */
import { afterAll, beforeAll, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/manifests.js';
import { cleanupPrefix, ensureBuilt } from '../support/real-host.js';
import { checkIdempotence, propertySettings } from '../support/idempotence-property.js';

const P = 'vftest-propf-';
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

it('after any converging apply of a random manifest set, the second dry-run plans nothing and the host reads back equal (large budget)', async () => {
  const { seed, runs } = propertySettings(30, '-c vitest.faults.config.ts test/faults/idempotence-property.test.ts');
  await checkIdempotence({
    prefix: P, poolPath: `/var/lib/virtform-test/${P}pool`, cidr3: '10.213.15', work, db: join(work, 'state.db'), runs, seed,
  });
}, 1_200_000);
