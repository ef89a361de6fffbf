/**
 * A Kysely dialect for PGlite 0.5 (Postgres in WASM), used when no DATABASE_URL is set.
 *
 * Why our own: PGlite is ONE connection. Kysely assumes a connection it acquires is its own
 * until released, so a transaction sends BEGIN … COMMIT over it. Published PGlite dialects hand
 * every caller the same connection without a lock: a query from another caller lands inside an
 * open transaction and is rolled back with it (a lost write). This driver hands the connection
 * out exclusively — a FIFO mutex is taken in `acquireConnection` and given back in
 * `releaseConnection` — so a transaction holds it from BEGIN to COMMIT/ROLLBACK and everything
 * else waits its turn. SQL generation, the adapter (migration lock) and introspection are
 * Kysely's Postgres ones: PGlite speaks the same SQL.
 */
import type { PGlite } from '@electric-sql/pglite';
import {
  CompiledQuery,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';

/** A FIFO async mutex: `acquire` resolves, in call order, to a release function. */
export class AsyncMutex {
  #tail: Promise<void> = Promise.resolve();

  acquire(): Promise<() => void> {
    let unlock!: () => void;
    const held = new Promise<void>((resolve) => (unlock = resolve));
    const previous = this.#tail;
    this.#tail = previous.then(() => held);
    return previous.then(() => {
      let released = false;
      // Idempotent: releasing twice must not let a third party in early.
      return () => {
        if (released) return;
        released = true;
        unlock();
      };
    });
  }

  async runExclusive<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

const WRITE_COMMANDS = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE']);

class PGliteConnection implements DatabaseConnection {
  constructor(private readonly pglite: PGlite) {}

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const result = await this.pglite.query<R>(compiledQuery.sql, [...compiledQuery.parameters], {
      rowMode: 'object',
    });
    const command = result.command?.toUpperCase();
    return {
      rows: result.rows,
      numAffectedRows:
        command !== undefined && WRITE_COMMANDS.has(command) ? BigInt(result.affectedRows ?? 0) : undefined,
    };
  }

  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streamQuery is not supported by the PGlite dialect');
  }
}

class PGliteDriver implements Driver {
  readonly #connection: PGliteConnection;
  /** The release function of the current holder; only one holder exists at a time. */
  #release: (() => void) | undefined;
  #destroyed = false;

  constructor(
    pglite: PGlite,
    private readonly mutex: AsyncMutex,
  ) {
    this.#connection = new PGliteConnection(pglite);
  }

  async init(): Promise<void> {
    // PGlite.create() resolves once the database is ready; nothing to do here.
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    if (this.#destroyed) throw new Error('the PGlite driver has been destroyed');
    const release = await this.mutex.acquire();
    if (this.#destroyed) {
      release();
      throw new Error('the PGlite driver has been destroyed');
    }
    this.#release = release;
    return this.#connection;
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    let sql = 'begin';
    if (settings.isolationLevel || settings.accessMode) {
      sql = 'start transaction';
      if (settings.isolationLevel) sql += ` isolation level ${settings.isolationLevel}`;
      if (settings.accessMode) sql += ` ${settings.accessMode}`;
    }
    await connection.executeQuery(CompiledQuery.raw(sql));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'));
  }

  async savepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`savepoint ${quoteIdent(name)}`));
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`rollback to savepoint ${quoteIdent(name)}`));
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`release savepoint ${quoteIdent(name)}`));
  }

  async releaseConnection(): Promise<void> {
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }

  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    // Wait for the current holder and everyone queued before us, then refuse new work.
    // Closing PGlite itself is the owner's job (see connect.ts).
    const release = await this.mutex.acquire();
    this.#destroyed = true;
    release();
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export interface PGliteDialectConfig {
  pglite: PGlite;
  /** Share a mutex to serialize non-Kysely work (LISTEN/UNLISTEN) with Kysely's queries. */
  mutex?: AsyncMutex;
}

export class PGliteDialect implements Dialect {
  readonly mutex: AsyncMutex;
  readonly #pglite: PGlite;

  constructor(config: PGliteDialectConfig) {
    this.#pglite = config.pglite;
    this.mutex = config.mutex ?? new AsyncMutex();
  }

  createDriver(): Driver {
    return new PGliteDriver(this.#pglite, this.mutex);
  }

  createQueryCompiler(): QueryCompiler {
    return new PostgresQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return new PostgresAdapter();
  }

  // Kysely's own signature takes Kysely<any>; the introspector does not depend on the schema.
  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new PostgresIntrospector(db);
  }
}
