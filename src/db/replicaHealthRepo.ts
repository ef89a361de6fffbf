/**
 * Consecutive failures per replica (`host:<id>`, `provider:<id>`), the input of demotion. A
 * request writes here only when a count changes — a failure, or a success of a replica that had
 * failed before — so the usual request adds no write.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

export type { ReplicaOutcome } from '../common/replicas.js';
import type { ReplicaOutcome } from '../common/replicas.js';
import type { ReplicaHealth } from '../domain/replicas.js';

/** Failures in a row and the last one's time, by replica key (absent: none). */
export async function readReplicaFailures(db: Kysely<Database>): Promise<Record<string, ReplicaHealth>> {
  const rows = await db.selectFrom('replica_health').select(['replica', 'consecutive_failures', 'last_failure_at']).where('consecutive_failures', '>', 0).execute();
  return Object.fromEntries(
    rows.map((r) => [r.replica, { consecutiveFailures: r.consecutive_failures, ...(r.last_failure_at ? { lastFailureAt: new Date(r.last_failure_at).getTime() } : {}) }]),
  );
}

export async function listReplicaHealth(db: Kysely<Database>) {
  return db.selectFrom('replica_health').selectAll().orderBy('replica').execute();
}

/** Applies a request's outcomes in order: a failure adds one, a success resets to zero. */
export async function recordReplicaOutcomes(db: Kysely<Database>, outcomes: readonly ReplicaOutcome[]): Promise<void> {
  for (const o of outcomes) {
    if (o.ok) {
      await db
        .insertInto('replica_health')
        .values({ replica: o.replica, consecutive_failures: 0, last_success_at: sql<Date>`now()` })
        .onConflict((oc) => oc.column('replica').doUpdateSet({ consecutive_failures: 0, last_success_at: sql<Date>`now()` }))
        .execute();
    } else {
      await db
        .insertInto('replica_health')
        .values({ replica: o.replica, consecutive_failures: 1, last_failure_at: sql<Date>`now()`, last_error: o.error ?? null })
        .onConflict((oc) =>
          oc.column('replica').doUpdateSet({
            consecutive_failures: sql<number>`replica_health.consecutive_failures + 1`,
            last_failure_at: sql<Date>`now()`,
            last_error: o.error ?? null,
          }),
        )
        .execute();
    }
  }
}
