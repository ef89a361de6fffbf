/**
 * The initial schema: hosts, the model catalog, which model is placed on which host, and the
 * request log. Kept self-contained (no imports from src/) so it stays exactly what was applied
 * even when the application types move on; src/db/schema.ts mirrors it for Kysely.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('hosts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('task_queue', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('up').check(sql`status in ('up', 'down')`))
    .addColumn('started_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_heartbeat_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('info', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('stats', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .execute();

  await db.schema
    .createTable('models')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('path', 'text', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('size_bytes', 'bigint', (c) => c.notNull().check(sql`size_bytes >= 0`))
    .addColumn('context_length', 'integer', (c) => c.notNull().check(sql`context_length > 0`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('placements')
    .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id').onDelete('cascade'))
    .addColumn('model_id', 'text', (c) => c.notNull().references('models.id').onDelete('cascade'))
    .addColumn('state', 'text', (c) =>
      c.notNull().check(sql`state in ('unloaded', 'loading', 'loaded', 'unloading', 'failed')`),
    )
    .addColumn('progress', 'real', (c) => c.notNull().defaultTo(0).check(sql`progress >= 0 and progress <= 1`))
    .addColumn('error', 'text')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_used_at', 'timestamptz')
    .addPrimaryKeyConstraint('placements_pkey', ['host_id', 'model_id'])
    .execute();
  // The primary key covers lookups by host; this one serves "where is model M" and the FK cascade.
  await db.schema.createIndex('placements_model_id_idx').on('placements').column('model_id').execute();

  // No foreign keys here: the log outlives catalog entries and hosts that are removed.
  await db.schema
    .createTable('request_log')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('chat', 'completion')`))
    .addColumn('model_id', 'text', (c) => c.notNull())
    .addColumn('host_id', 'text')
    .addColumn('principal', 'text')
    .addColumn('stream', 'boolean', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('ok', 'error', 'cancelled')`))
    .addColumn('finish_reason', 'text')
    .addColumn('error_code', 'text')
    .addColumn('prompt_tokens', 'integer', (c) => c.notNull().check(sql`prompt_tokens >= 0`))
    .addColumn('completion_tokens', 'integer', (c) => c.notNull().check(sql`completion_tokens >= 0`))
    .addColumn('started_at', 'timestamptz', (c) => c.notNull())
    .addColumn('finished_at', 'timestamptz', (c) => c.notNull())
    .addColumn('duration_ms', 'integer', (c) => c.notNull().check(sql`duration_ms >= 0`))
    .execute();
  await db.schema
    .createIndex('request_log_model_started_idx')
    .on('request_log')
    .columns(['model_id', 'started_at'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('request_log').execute();
  await db.schema.dropTable('placements').execute();
  await db.schema.dropTable('models').execute();
  await db.schema.dropTable('hosts').execute();
}
