/**
 * Attestation and pin sets: which models are verifiable (and how often their pin set is
 * refreshed), each model's current pin set, and the outcome of every discovery cycle.
 * Self-contained like 0001 (no src/ imports).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('models')
    .addColumn('verifiable', 'boolean', (c) => c.notNull().defaultTo(false))
    .execute();
  await db.schema
    .alterTable('models')
    .addColumn('discovery_interval_s', 'integer', (c) => c.notNull().defaultTo(300).check(sql`discovery_interval_s >= 10`))
    .execute();

  // One row per model: the fingerprints trusted to serve it, and the pin-set state.
  await db.schema
    .createTable('pin_sets')
    .addColumn('model_id', 'text', (c) => c.primaryKey().references('models.id').onDelete('cascade'))
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('bootstrap', 'pinned', 'blocked', 'empty')`))
    .addColumn('fingerprints', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  // One row per discovery cycle (its workflow id): what it counted, verified and changed.
  await db.schema
    .createTable('discovery_cycles')
    .addColumn('workflow_id', 'text', (c) => c.primaryKey())
    .addColumn('model_id', 'text', (c) => c.notNull())
    .addColumn('started_at', 'timestamptz', (c) => c.notNull())
    .addColumn('outcome', 'jsonb', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('discovery_cycles_model_idx').on('discovery_cycles').columns(['model_id', 'started_at']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('discovery_cycles').execute();
  await db.schema.dropTable('pin_sets').execute();
  await db.schema.alterTable('models').dropColumn('discovery_interval_s').execute();
  await db.schema.alterTable('models').dropColumn('verifiable').execute();
}
