/**
 * API keys and token budgets: accounts, keys (only a hash of each secret is stored), the
 * reservations a request holds between dispatch and settlement, the ledger of settled usage,
 * and its per-key time buckets that rolling windows are computed from. Self-contained like
 * 0001 (no src/ imports).
 *
 * Invariant the API relies on: for each key, spent + held reservations never pass a cap,
 * because a reservation is inserted only in a transaction holding the key row's lock.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('accounts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
    .addColumn('name', 'text')
    // sha256 (hex) of the key's secret; the secret itself is shown once and never stored.
    .addColumn('secret_hash', 'text', (c) => c.notNull())
    .addColumn('balance_limit', 'bigint', (c) => c.check(sql`balance_limit >= 0`))
    .addColumn('window_limit', 'bigint', (c) => c.check(sql`window_limit >= 1`))
    .addColumn('window_seconds', 'integer', (c) => c.check(sql`window_seconds >= 1`))
    // Settled tokens over the key's lifetime (prompt + completion).
    .addColumn('spent', 'bigint', (c) => c.notNull().defaultTo(0).check(sql`spent >= 0`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('revoked_at', 'timestamptz')
    .addColumn('last_used_at', 'timestamptz')
    .addCheckConstraint('api_keys_window_pair', sql`(window_limit is null) = (window_seconds is null)`)
    .execute();
  await db.schema.createIndex('api_keys_account_idx').on('api_keys').column('account_id').execute();

  // One row per keyed request: held from before dispatch until settled or released.
  await db.schema
    .createTable('reservations')
    .addColumn('request_id', 'text', (c) => c.primaryKey())
    .addColumn('key_id', 'text', (c) => c.notNull().references('api_keys.id'))
    .addColumn('amount', 'integer', (c) => c.notNull().check(sql`amount >= 0`))
    .addColumn('state', 'text', (c) => c.notNull().defaultTo('held').check(sql`state in ('held', 'settled', 'released')`))
    .addColumn('prompt_tokens', 'integer', (c) => c.notNull().defaultTo(0).check(sql`prompt_tokens >= 0`))
    .addColumn('completion_tokens', 'integer', (c) => c.notNull().defaultTo(0).check(sql`completion_tokens >= 0`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('finished_at', 'timestamptz')
    .execute();
  // The reservation check sums a key's held rows; the sweep finds expired held rows.
  await db.schema
    .createIndex('reservations_held_key_idx')
    .on('reservations')
    .column('key_id')
    .where(sql.ref('state'), '=', 'held')
    .execute();
  await db.schema
    .createIndex('reservations_held_expiry_idx')
    .on('reservations')
    .column('expires_at')
    .where(sql.ref('state'), '=', 'held')
    .execute();

  // Settled usage, one row per settled request: rolling windows sum the recent rows.
  await db.schema
    .createTable('key_ledger')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('key_id', 'text', (c) => c.notNull().references('api_keys.id'))
    .addColumn('request_id', 'text', (c) => c.notNull().unique())
    .addColumn('prompt_tokens', 'integer', (c) => c.notNull().check(sql`prompt_tokens >= 0`))
    .addColumn('completion_tokens', 'integer', (c) => c.notNull().check(sql`completion_tokens >= 0`))
    .addColumn('tokens', 'integer', (c) => c.notNull().check(sql`tokens >= 0`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('key_ledger_key_time_idx').on('key_ledger').columns(['key_id', 'created_at']).execute();

  // The ledger summed per key and time bucket (1/100 of the key's window), so a window check
  // reads at most ~100 rows whatever the traffic; old buckets are deleted by the sweep.
  await db.schema
    .createTable('key_window_buckets')
    .addColumn('key_id', 'text', (c) => c.notNull().references('api_keys.id'))
    .addColumn('bucket_start', 'timestamptz', (c) => c.notNull())
    .addColumn('tokens', 'bigint', (c) => c.notNull().check(sql`tokens >= 0`))
    .addPrimaryKeyConstraint('key_window_buckets_pkey', ['key_id', 'bucket_start'])
    .execute();

  // Usage reports per key from the request log.
  await db.schema.createIndex('request_log_principal_idx').on('request_log').columns(['principal', 'started_at']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('request_log_principal_idx').execute();
  await db.schema.dropTable('key_window_buckets').execute();
  await db.schema.dropTable('key_ledger').execute();
  await db.schema.dropTable('reservations').execute();
  await db.schema.dropTable('api_keys').execute();
  await db.schema.dropTable('accounts').execute();
}
