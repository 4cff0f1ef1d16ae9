// vitest globalSetup of `make test-postgres` (vitest.postgres.config.ts): one private PostgreSQL
// cluster for the run (test/support/postgres.ts), its URL in VIRTFORM_TEST_PG_URL for the test
// files, stopped and removed after.
import { postgresGlobalSetup } from './postgres.js';

export default postgresGlobalSetup;
