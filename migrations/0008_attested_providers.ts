/**
 * Attested remote providers:
 * - `providers.transport`: how to reach it (`resolve` host → address overrides, an extra CA
 *   file), and `providers.discovery_interval_s`: how often its models' pin sets are refreshed;
 * - `pin_sets.keys`: for each pinned TLS SPKI fingerprint, the signing keys its attested report
 *   vouched for (`{ed25519?, ecdsa?}` signing addresses), so a response signature is checked
 *   against the key of the very backend that served it; `pin_sets.backend_count` (the last
 *   count, for request-time rotation) and `cycle_seq` (which window a capped cycle covers next).
 * - `response_signatures.signature_kind`: `host` (our own host's Ed25519 over the signed fields) or
 *   `provider_tee` (an attested provider backend's signature over `<model>:<sha256 req>:<sha256 resp>`,
 *   kept in `signed` as `{text, upstream_id, signing_algo}`, its key in `public_key`, the pinned
 *   TLS fingerprint that vouched for it in `fingerprint`).
 * Own hosts' pin sets leave the new columns at their defaults. Self-contained (no src/ imports).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('providers')
    .addColumn('transport', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('discovery_interval_s', 'integer', (c) => c.notNull().defaultTo(300).check(sql`discovery_interval_s >= 10`))
    .execute();
  await db.schema
    .alterTable('pin_sets')
    .addColumn('keys', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('backend_count', 'integer')
    .addColumn('cycle_seq', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable('response_signatures')
    .addColumn('signature_kind', 'text', (c) => c.notNull().defaultTo('host').check(sql`signature_kind in ('host', 'provider_tee')`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('response_signatures').dropColumn('signature_kind').execute();
  await db.schema.alterTable('pin_sets').dropColumn('cycle_seq').dropColumn('backend_count').dropColumn('keys').execute();
  await db.schema.alterTable('providers').dropColumn('discovery_interval_s').dropColumn('transport').execute();
}
