/**
 * Accounts and API keys. A key row holds the sha256 of its secret (never the secret), its
 * optional budget (hard balance, rolling window) and its settled spend. Accounts are created
 * on first use by a key. Revocation is a timestamp, so usage history keeps its key.
 */
import { sql, type Kysely } from 'kysely';
import type { ApiKeyRow, Database } from './schema.js';

export interface NewKeyInput {
  id: string;
  accountId: string;
  name: string | null;
  secretHash: string;
  balanceLimit: number | null;
  window: { limit: number; seconds: number } | null;
}

/** Inserts the key, creating its account if needed, in one transaction. */
export async function createKey(db: Kysely<Database>, k: NewKeyInput): Promise<ApiKeyRow> {
  return db.transaction().execute(async (tx) => {
    await tx.insertInto('accounts').values({ id: k.accountId }).onConflict((oc) => oc.column('id').doNothing()).execute();
    return tx
      .insertInto('api_keys')
      .values({
        id: k.id,
        account_id: k.accountId,
        name: k.name,
        secret_hash: k.secretHash,
        balance_limit: k.balanceLimit,
        window_limit: k.window?.limit ?? null,
        window_seconds: k.window?.seconds ?? null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  });
}

/** The key by id, revoked or not (the caller decides what revoked means). */
export async function getKey(db: Kysely<Database>, id: string): Promise<ApiKeyRow | undefined> {
  return db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listKeys(db: Kysely<Database>, filter: { accountId?: string } = {}): Promise<ApiKeyRow[]> {
  let q = db.selectFrom('api_keys').selectAll();
  if (filter.accountId !== undefined) q = q.where('account_id', '=', filter.accountId);
  return q.orderBy('account_id').orderBy('created_at').orderBy('id').execute();
}

/**
 * Revokes a key; returns the row (with its first revocation time when already revoked), or
 * undefined for an unknown id.
 */
export async function revokeKey(db: Kysely<Database>, id: string): Promise<ApiKeyRow | undefined> {
  const revoked = await db
    .updateTable('api_keys')
    .set({ revoked_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
  return revoked ?? getKey(db, id);
}
