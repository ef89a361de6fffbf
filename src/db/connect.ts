/**
 * Opens the database: a real PostgreSQL server when a URL is given (pg Pool + Kysely's
 * PostgresDialect), otherwise PGlite — embedded Postgres persisted in a folder (or in memory) —
 * behind the same Kysely type, migrations and queries. The handle also carries LISTEN/NOTIFY,
 * which the token stream channel uses to cross processes, and a single idempotent close().
 *
 * The URL may hold a password: it is never logged, nor put in an error message.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { PGlite, types as pgliteTypes } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { log as rootLog, type Logger } from '../logger.js';
import { PGliteDialect } from './pgliteDialect.js';
import { PgListener, quoteIdent } from './pgListener.js';
import type { Database } from './schema.js';

export interface OpenDatabaseOptions {
  /** postgres:// URL of a server. Unset → PGlite. */
  databaseUrl?: string;
  /** Folder PGlite persists to (created if missing). Unset (and no URL) → in-memory PGlite. */
  pgliteDir?: string;
  log?: Logger;
}

export interface DbHandle {
  db: Kysely<Database>;
  kind: 'postgres' | 'pglite';
  /** Calls `onPayload` for each NOTIFY on `channel`, in order; resolves once listening. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  notify(channel: string, payload: string): Promise<void>;
  close(): Promise<void>;
}

/** Postgres caps a NOTIFY payload below 8000 bytes; stay clear of the edge. */
export const MAX_NOTIFY_PAYLOAD_BYTES = 7900;
/** Channel names are identifiers (max 63 bytes); this set needs no escaping on either backend. */
const CHANNEL_NAME = /^[A-Za-z0-9_.:-]{1,63}$/;

let int8ParserInstalled = false;

export async function openDatabase(opts: OpenDatabaseOptions = {}): Promise<DbHandle> {
  const log = (opts.log ?? rootLog).child({ module: 'db' });
  return opts.databaseUrl ? openPostgres(opts.databaseUrl, log) : openPGlite(opts.pgliteDir, log);
}

/** host:port/database of a URL — enough to say where, without user or password. */
export function describeDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname || '/'}`;
  } catch {
    return '(unparseable database URL)';
  }
}

async function openPostgres(databaseUrl: string, log: Logger): Promise<DbHandle> {
  if (!int8ParserInstalled) {
    // int8 (counts, byte sizes) as number instead of string; global to `pg`, so install once.
    pg.types.setTypeParser(20, Number); // 20 = int8
    int8ParserInstalled = true;
  }
  const where = describeDatabaseUrl(databaseUrl);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  // An idle client losing its socket emits on the pool; unhandled, it would crash the process.
  pool.on('error', (err) => log.warn({ err: err.message }, 'idle PostgreSQL connection failed'));
  // A client checked out of the pool (e.g. between two statements of a transaction) has no
  // listener of the pool's: a server crash at that moment would be an uncaught 'error' and take
  // the process down. The statement in flight fails and the pool drops the client; this only logs.
  pool.on('connect', (client) => client.on('error', (err) => log.debug({ err: err.message }, 'PostgreSQL connection lost while in use')));
  try {
    // Fail at start, with a clear message, rather than on the first request.
    await pool.query('select 1');
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new Error(`cannot connect to PostgreSQL at ${where}: ${(err as Error).message}`, { cause: err });
  }
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const listener = new PgListener(databaseUrl, log);
  log.info({ where }, 'connected to PostgreSQL');

  return makeHandle('postgres', db, log, {
    listen: (channel, onPayload) => listener.subscribe(channel, onPayload),
    close: async () => {
      await listener.close();
      await db.destroy(); // ends the pool
    },
  });
}

async function openPGlite(dir: string | undefined, log: Logger): Promise<DbHandle> {
  const started = Date.now();
  let dataDir: string | undefined;
  if (dir !== undefined) {
    dataDir = path.resolve(dir);
    await mkdir(dataDir, { recursive: true });
  }
  const pglite = await PGlite.create({
    ...(dataDir !== undefined ? { dataDir } : {}),
    // Same int8 handling as the pg connection, so both backends return the same shapes.
    parsers: { [pgliteTypes.INT8]: (value: string) => Number(value) },
  });
  const dialect = new PGliteDialect({ pglite });
  const db = new Kysely<Database>({ dialect });
  log.info({ dataDir: dataDir ?? ':memory:', ms: Date.now() - started }, 'opened embedded PGlite');

  return makeHandle('pglite', db, log, {
    async listen(channel, onPayload) {
      // PGlite splices LISTEN into its single connection: take the dialect's lock so it never
      // lands inside (and gets rolled back with) a transaction another caller holds open.
      // The name is passed quoted — PGlite lowercases unquoted names and interpolates raw.
      const quoted = quoteIdent(channel);
      const entry = (payload: string) => onPayload(payload);
      await dialect.mutex.runExclusive(() => pglite.listen(quoted, entry));
      let done = false;
      return async () => {
        if (done || pglite.closed) return;
        done = true;
        // Not PGlite's returned unsubscribe: it re-normalizes the name and breaks on mixed case.
        await dialect.mutex.runExclusive(() => pglite.unlisten(quoted, entry));
      };
    },
    close: async () => {
      await db.destroy(); // waits for in-flight queries
      await pglite.close();
    },
  });
}

interface BackendOps {
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

function makeHandle(kind: DbHandle['kind'], db: Kysely<Database>, log: Logger, ops: BackendOps): DbHandle {
  let closing: Promise<void> | undefined;
  const assertOpen = () => {
    if (closing) throw new Error('the database handle is closed');
  };
  return {
    db,
    kind,
    async listen(channel, onPayload) {
      assertOpen();
      checkChannel(channel);
      return ops.listen(channel, onPayload);
    },
    async notify(channel, payload) {
      assertOpen();
      checkChannel(channel);
      const bytes = Buffer.byteLength(payload, 'utf8');
      if (bytes > MAX_NOTIFY_PAYLOAD_BYTES) {
        throw new RangeError(
          `NOTIFY payload on "${channel}" is ${bytes} bytes; the limit is ${MAX_NOTIFY_PAYLOAD_BYTES} ` +
            '(Postgres rejects payloads of 8000 bytes or more) — split it or send a reference',
        );
      }
      await sql`select pg_notify(${channel}, ${payload})`.execute(db);
    },
    close() {
      closing ??= ops.close().then(
        () => log.debug({ kind }, 'database closed'),
        (err: unknown) => {
          log.warn({ kind, err: (err as Error).message }, 'error while closing the database');
        },
      );
      return closing;
    },
  };
}

function checkChannel(channel: string): void {
  if (!CHANNEL_NAME.test(channel)) {
    throw new RangeError(`invalid channel name "${channel}": use 1-63 of A-Z a-z 0-9 _ . : -`);
  }
}
