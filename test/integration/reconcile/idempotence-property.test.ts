/**
 * Idempotence as a property, small fixed budget (`make test`): random manifest sets applied to
 * qemu:///system one after the other; after each apply the second dry-run says "No changes." and
 * the read-back oracle agrees. See test/support/idempotence-property.ts; the larger budget runs in
 * `make test-faults` (test/faults/idempotence-property.test.ts).
 */
import { idempotenceSuite } from '../../support/idempotence-property.js';
import { suiteNames } from '../../support/names.js';

idempotenceSuite({
  names: suiteNames('prop'), defaultRuns: 4, replay: 'test/integration/reconcile/idempotence-property.test.ts',
  timeoutMs: 300_000,
  title: 'after any converging apply of a random manifest set, the second dry-run plans nothing and the host reads back equal',
});
