/**
 * Backends as a port: a build is a GGUF file on our hosts or a model of a remote provider.
 * - `providers`: OpenAI-compatible upstreams (base URL, tier, the *name* of the environment
 *   variable holding the key — never the key —, capabilities, the canonical=slug map, timeouts),
 *   from the config file (`source = config`) or the admin API (`source = admin`).
 * - `models` gains `kind`: `gguf` rows keep path/sha256/size (now nullable, required by a check);
 *   `remote` rows name their provider, the upstream slug and the canonical id they serve, and
 *   whether they are active (a model seen only at a third party waits for an operator).
 * - `replica_health`: consecutive failures per replica (`host:<id>`, `provider:<id>`), for
 *   demotion; written only when a count changes, so the hot path adds no write.
 * - `request_log.provider_id`: the replica that served, when it was a provider.
 * Self-contained like 0001 (no src/ imports).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('providers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('base_url', 'text', (c) => c.notNull())
    .addColumn('tier', 'text', (c) => c.notNull().check(sql`tier in ('attested', 'plaintext')`))
    .addColumn('api_key_env', 'text')
    .addColumn('streaming', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('e2ee', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('enabled', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('models_spec', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('context_length', 'integer', (c) => c.notNull().defaultTo(8192))
    .addColumn('timeouts', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('source', 'text', (c) => c.notNull().check(sql`source in ('config', 'admin')`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .alterTable('models')
    .addColumn('kind', 'text', (c) => c.notNull().defaultTo('gguf').check(sql`kind in ('gguf', 'remote')`))
    .addColumn('provider_id', 'text', (c) => c.references('providers.id').onDelete('cascade'))
    .addColumn('upstream_model', 'text')
    .addColumn('canonical_id', 'text')
    .addColumn('active', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('origin', 'text', (c) => c.check(sql`origin in ('mapped', 'discovered')`))
    .execute();
  await sql`alter table models alter column path drop not null`.execute(db);
  await sql`alter table models alter column sha256 drop not null`.execute(db);
  await sql`alter table models alter column size_bytes drop not null`.execute(db);
  await sql`alter table models add constraint models_kind_shape check (
    (kind = 'gguf' and path is not null and sha256 is not null and size_bytes is not null and provider_id is null)
    or (kind = 'remote' and provider_id is not null and upstream_model is not null and canonical_id is not null)
  )`.execute(db);
  await sql`create unique index models_remote_unique on models (provider_id, upstream_model) where kind = 'remote'`.execute(db);
  await sql`create index models_canonical on models (canonical_id) where kind = 'remote'`.execute(db);

  await db.schema
    .createTable('replica_health')
    .addColumn('replica', 'text', (c) => c.primaryKey())
    .addColumn('consecutive_failures', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_failure_at', 'timestamptz')
    .addColumn('last_success_at', 'timestamptz')
    .addColumn('last_error', 'text')
    .execute();

  await db.schema.alterTable('request_log').addColumn('provider_id', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('request_log').dropColumn('provider_id').execute();
  await db.schema.dropTable('replica_health').execute();
  await sql`delete from models where kind = 'remote'`.execute(db);
  await sql`drop index if exists models_canonical`.execute(db);
  await sql`drop index if exists models_remote_unique`.execute(db);
  await sql`alter table models drop constraint models_kind_shape`.execute(db);
  await db.schema
    .alterTable('models')
    .dropColumn('origin')
    .dropColumn('active')
    .dropColumn('canonical_id')
    .dropColumn('upstream_model')
    .dropColumn('provider_id')
    .dropColumn('kind')
    .execute();
  await sql`alter table models alter column path set not null`.execute(db);
  await sql`alter table models alter column sha256 set not null`.execute(db);
  await sql`alter table models alter column size_bytes set not null`.execute(db);
  await db.schema.dropTable('providers').execute();
}
