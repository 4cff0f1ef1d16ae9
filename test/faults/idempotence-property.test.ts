/**
 * Idempotence as a property, larger budget (`make test-faults`): the same property as
 * test/integration/reconcile/idempotence-property.test.ts (random manifest sets applied one after
 * the other; the second dry-run plans nothing; the read-back oracle agrees), 30 sets by default
 * (`VIRTFORM_PROPERTY_RUNS`; `VIRTFORM_PROPERTY_SEED` replays a printed seed).
 */
import { idempotenceSuite } from '../support/idempotence-property.js';
import { suiteNames } from '../support/names.js';

idempotenceSuite({
  names: suiteNames('propf'), defaultRuns: 30, replay: '-c vitest.faults.config.ts test/faults/idempotence-property.test.ts',
  timeoutMs: 1_200_000,
  title: 'after any converging apply of a random manifest set, the second dry-run plans nothing and the host reads back equal (large budget)',
});
