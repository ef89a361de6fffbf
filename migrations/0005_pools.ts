/**
 * Aliases and pools. A public model id (alias) points to a desired build and optionally the
 * previous one (rows of `models`, which are concrete GGUF files); `min_warm` is what the
 * warm-pool planner keeps loaded. `host_pools` records which alias's pool each host serves.
 * It has no foreign key to `hosts`: a host that restarts (or is deregistered for a moment)
 * keeps its pool and the time it last moved, so the planner's cool-down survives restarts.
 * Every existing build gets an alias of the same id, so clients see no change.
 * Self-contained like 0001 (no src/ imports).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('aliases')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('desired_build', 'text', (c) => c.notNull().references('models.id').onDelete('cascade'))
    .addColumn('previous_build', 'text', (c) => c.references('models.id').onDelete('set null'))
    .addColumn('min_warm', 'integer', (c) => c.notNull().defaultTo(0).check(sql`min_warm >= 0`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addCheckConstraint('aliases_builds_differ', sql`previous_build is null or previous_build <> desired_build`)
    .execute();

  await db.schema
    .createTable('host_pools')
    .addColumn('host_id', 'text', (c) => c.primaryKey())
    .addColumn('alias', 'text', (c) => c.references('aliases.id').onDelete('set null'))
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('serving', 'moving', 'failed')`))
    .addColumn('source', 'text', (c) => c.notNull().check(sql`source in ('running', 'advertised', 'moved')`))
    .addColumn('moved_at', 'timestamptz')
    .addColumn('error', 'text')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await sql`insert into aliases (id, desired_build) select id, id from models on conflict do nothing`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('host_pools').execute();
  await db.schema.dropTable('aliases').execute();
}
