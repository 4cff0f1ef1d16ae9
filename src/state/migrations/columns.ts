import type { ColumnDefinitionBuilder, CreateTableBuilder, Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Table = CreateTableBuilder<any, any>;
type DataType = Parameters<Table['addColumn']>[1];

/**
 * Adds columns written compactly, comma-separated, each `name type [!] [=default] [pk]`: `!` not
 * null, `=x` default x (a number where x is digits, the empty string for a bare `=`), `pk` primary
 * key. The builder calls are the ones the migrations always made column by column
 * (`c.notNull().defaultTo(x)`), so the DDL is unchanged (test/unit/state/schema-compat.test.ts).
 */
export function withColumns(table: Table, specs: string): Table {
  let t = table;
  for (const spec of specs.split(',')) {
    const [name, type, ...mods] = spec.trim().split(/\s+/);
    if (name === undefined || type === undefined) throw new Error(`column spec without a name and type: '${spec}'`);
    const build = (c: ColumnDefinitionBuilder): ColumnDefinitionBuilder => {
      let b = c;
      for (const m of mods) {
        if (m === '!') b = b.notNull();
        else if (m === 'pk') b = b.primaryKey();
        else if (m.startsWith('=')) b = b.defaultTo(/^\d+$/.test(m.slice(1)) ? Number(m.slice(1)) : m.slice(1));
        else throw new Error(`unknown column modifier '${m}' in '${spec}'`);
      }
      return b;
    };
    t = mods.length === 0 ? t.addColumn(name, type as DataType) : t.addColumn(name, type as DataType, build);
  }
  return t;
}

/** The columns of `resources` as 0001 made them (after `id`, before `last_applied_revision`); 0008 rebuilds the table with them. */
export const RESOURCE_COLUMNS =
  'kind varchar(64) !, name varchar(255) !, uuid varchar(64), spec_hash varchar(128), generation integer ! =0, desired_state varchar(32), ' +
  'observed_status varchar(64), last_error text, attempts integer ! =0, details text ! ={}, created_at varchar(32) !, updated_at varchar(32) !';

/** The `locks` table of 0001 (dropped by 0009, whose `down` makes it again). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function createLocks(db: Kysely<any>): Promise<void> {
  const locks = db.schema.createTable('locks').ifNotExists();
  await withColumns(locks, 'name varchar(64) pk, pid integer !, hostname varchar(255) !, command text !, acquired_at varchar(32) !, heartbeat_at varchar(32) !').execute();
}
