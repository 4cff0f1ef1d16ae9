/**
 * Fencing of the store's writes by the writer lease, in one place: a kysely dialect wrapper whose
 * connections run the lease's check before the first write of every transaction, and wrap a write
 * outside a transaction in one (`begin`, check, write, `commit`). So every write of the store, and
 * every write added to it later, is fenced without the repositories knowing. The check itself is
 * the lease's (src/state/lease.ts: the row read `FOR SHARE` on PostgreSQL, epoch and holder compared).
 *
 * Writes are the statements the query builder makes (insert, update, delete, merge); a raw `sql`
 * statement is not recognised as one, so the store writes through the builder only. The lease's
 * own statements (table `leases`) are never fenced: a standby must be able to acquire it again.
 */
import {
  CompiledQuery, type DatabaseConnection, type DatabaseIntrospector, type Dialect, type DialectAdapter, type Driver, type Kysely,
  type OperationNode, type QueryCompiler, type QueryResult, type RootOperationNode, type TransactionSettings,
} from 'kysely';

/** Runs one SQL statement on the connection being fenced; returns its rows. */
export type FenceQuery = (sql: string, parameters: readonly unknown[]) => Promise<Record<string, unknown>[]>;

export interface Fence {
  /** Throws to refuse the write (its transaction rolls back). Runs on the writing connection, inside its transaction. */
  fence(query: FenceQuery): Promise<void>;
}

function tableName(node: OperationNode | undefined): string | undefined {
  if (!node) return undefined;
  if (node.kind === 'TableNode') return (node as unknown as { table: { identifier: { name: string } } }).table.identifier.name;
  if (node.kind === 'AliasNode') return tableName((node as unknown as { node: OperationNode }).node);
  return undefined;
}

/** The table a write statement writes to; null when the statement is not a write. */
export function writeTarget(node: RootOperationNode): string | undefined | null {
  switch (node.kind) {
    case 'InsertQueryNode':
      return tableName(node.into);
    case 'UpdateQueryNode':
      return tableName(node.table);
    case 'DeleteQueryNode':
      return tableName(node.from.froms[0]);
    case 'MergeQueryNode':
      return tableName(node.into);
    default:
      return null;
  }
}

const UNFENCED_TABLES = new Set(['leases']);

/** A dialect whose writes the {@link fence} set on it checks (none while it is unset). */
export class FencingDialect implements Dialect {
  /** Set while this process holds the writer lease (and after it lost it, until released). */
  fence: Fence | undefined;

  /**
   * @param inner the backend's dialect
   * @param beginSql how a write outside a transaction is wrapped (`begin immediate` on SQLite: the
   *   write lock first, so the check and the write see the same state)
   */
  constructor(readonly inner: Dialect, readonly beginSql = 'begin') {}

  createAdapter(): DialectAdapter {
    return this.inner.createAdapter();
  }

  createQueryCompiler(): QueryCompiler {
    return this.inner.createQueryCompiler();
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return this.inner.createIntrospector(db);
  }

  createDriver(): Driver {
    return new FencingDriver(this.inner.createDriver(), this);
  }
}

class FencingConnection implements DatabaseConnection {
  /** In a transaction, and whether its check ran already. */
  tx: { checked: boolean } | undefined;
  constructor(readonly inner: DatabaseConnection, readonly dialect: FencingDialect) {}

  async executeQuery<R>(cq: CompiledQuery): Promise<QueryResult<R>> {
    const fence = this.dialect.fence;
    const target = fence ? writeTarget(cq.query) : null;
    if (!fence || target === null || (target !== undefined && UNFENCED_TABLES.has(target))) return this.inner.executeQuery<R>(cq);
    const query: FenceQuery = async (sql, parameters) => (await this.inner.executeQuery<Record<string, unknown>>(CompiledQuery.raw(sql, [...parameters]))).rows;
    if (this.tx) {
      if (!this.tx.checked) {
        await fence.fence(query);
        this.tx.checked = true;
      }
      return this.inner.executeQuery<R>(cq);
    }
    await this.inner.executeQuery(CompiledQuery.raw(this.dialect.beginSql));
    try {
      await fence.fence(query);
      const result = await this.inner.executeQuery<R>(cq);
      await this.inner.executeQuery(CompiledQuery.raw('commit'));
      return result;
    } catch (e) {
      // safe-catch: the write's own error (or the fence's) is what is thrown
      await this.inner.executeQuery(CompiledQuery.raw('rollback')).catch(() => undefined);
      throw e;
    }
  }

  streamQuery<R>(cq: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(cq, chunkSize);
  }
}

class FencingDriver implements Driver {
  readonly savepoint?: Driver['savepoint'];
  readonly rollbackToSavepoint?: Driver['rollbackToSavepoint'];
  readonly releaseSavepoint?: Driver['releaseSavepoint'];

  constructor(readonly inner: Driver, readonly dialect: FencingDialect) {
    const un = (c: DatabaseConnection): DatabaseConnection => (c as FencingConnection).inner;
    if (inner.savepoint) this.savepoint = (c, name, compile) => inner.savepoint!(un(c), name, compile);
    if (inner.rollbackToSavepoint) this.rollbackToSavepoint = (c, name, compile) => inner.rollbackToSavepoint!(un(c), name, compile);
    if (inner.releaseSavepoint) this.releaseSavepoint = (c, name, compile) => inner.releaseSavepoint!(un(c), name, compile);
  }

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new FencingConnection(await this.inner.acquireConnection(), this.dialect);
  }

  async beginTransaction(c: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const conn = c as FencingConnection;
    await this.inner.beginTransaction(conn.inner, settings);
    conn.tx = { checked: false };
  }

  async commitTransaction(c: DatabaseConnection): Promise<void> {
    const conn = c as FencingConnection;
    conn.tx = undefined;
    await this.inner.commitTransaction(conn.inner);
  }

  async rollbackTransaction(c: DatabaseConnection): Promise<void> {
    const conn = c as FencingConnection;
    conn.tx = undefined;
    await this.inner.rollbackTransaction(conn.inner);
  }

  releaseConnection(c: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection((c as FencingConnection).inner);
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}
