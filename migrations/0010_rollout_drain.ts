/**
 * Rollouts bounded by a load: `host_pools.draining_since` marks a host the warm-pool planner
 * is emptying for its rollout step. Routing sends it no new request while another host of the
 * pool serves the alias, so under steady load it becomes idle within one request instead of
 * waiting for a lucky idle moment. Null: not draining. Self-contained (no src/ imports).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('host_pools').addColumn('draining_since', 'timestamptz').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('host_pools').dropColumn('draining_since').execute();
}
