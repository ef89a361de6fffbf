/**
 * What "nothing takes the fleet down" needs in the database:
 * - `models.quarantined_at` / `quarantine_reason` / `quarantine_host`: a build whose load failed
 *   for the build's own sake (a malformed file, a probe or a host killed by llama.cpp). No host
 *   is sent to load it again until an operator releases it (`fleet models release <id>`).
 * - `hosts.suspect_since`: set when a request's `generate` on the host was never picked up
 *   (schedule-to-start timeout) or its heartbeat stopped mid-generation; routing avoids the host
 *   until its next heartbeat clears it, instead of waiting for three missed heartbeats.
 * - `response_signatures.account_id`: a signature is readable only by the account that made
 *   the request (or with the admin token); null for anonymous requests.
 * Self-contained like 0001 (no src/ imports).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('models')
    .addColumn('quarantined_at', 'timestamptz')
    .addColumn('quarantine_reason', 'text')
    .addColumn('quarantine_host', 'text')
    .execute();
  await db.schema.alterTable('hosts').addColumn('suspect_since', 'timestamptz').execute();
  await db.schema.alterTable('response_signatures').addColumn('account_id', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('response_signatures').dropColumn('account_id').execute();
  await db.schema.alterTable('hosts').dropColumn('suspect_since').execute();
  await db.schema.alterTable('models').dropColumn('quarantine_host').dropColumn('quarantine_reason').dropColumn('quarantined_at').execute();
}
