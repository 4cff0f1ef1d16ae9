import type { Migration, MigrationProvider } from 'kysely';
import * as m0001 from './0001_initial.js';
import * as m0002 from './0002_hosts.js';
import * as m0003 from './0003_git_sources.js';
import * as m0004 from './0004_safety.js';
import * as m0005 from './0005_baselines.js';
import * as m0006 from './0006_volume_references.js';
import * as m0007 from './0007_created_paths.js';
import * as m0008 from './0008_host_keys.js';
import * as m0009 from './0009_lease.js';
import * as m0012 from './0012_standby.js';
import * as m0013 from './0013_definition_checks.js';
import * as m0014 from './0014_runs.js';
import * as m0015 from './0015_requests.js';

/**
 * All migrations, imported explicitly (no filesystem scanning, so this works from `dist/` and
 * from bundles). Add new ones here; names sort lexically and must never be renamed.
 */
export const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_hosts': m0002,
  '0003_git_sources': m0003,
  '0004_safety': m0004,
  '0005_baselines': m0005,
  '0006_volume_references': m0006,
  '0007_created_paths': m0007,
  '0008_host_keys': m0008,
  '0009_lease': m0009,
  '0012_standby': m0012,
  '0013_definition_checks': m0013,
  '0014_runs': m0014,
  '0015_requests': m0015,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
