/**
 * The request log: one row per finished inference request (ok, error or cancelled), for usage
 * reports and debugging. Written from an activity that Temporal may retry, so the insert is
 * idempotent on the request id.
 */
import type { Kysely } from 'kysely';
import type { Database, NewRequestLog, RequestLogRow } from './schema.js';

/** Inserts the row; returns false (and changes nothing) when the id is already logged. */
export async function insertRequestLog(db: Kysely<Database>, row: NewRequestLog): Promise<boolean> {
  const result = await db
    .insertInto('request_log')
    .values(row)
    .onConflict((oc) => oc.column('id').doNothing())
    .executeTakeFirst();
  return (result.numInsertedOrUpdatedRows ?? 0n) > 0n;
}

export async function getRequestLog(db: Kysely<Database>, id: string): Promise<RequestLogRow | undefined> {
  return db.selectFrom('request_log').selectAll().where('id', '=', id).executeTakeFirst();
}
