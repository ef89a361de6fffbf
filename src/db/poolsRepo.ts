/**
 * Which pool (alias) each host serves. Seeding happens on a host's heartbeat while it has no
 * pool yet (the decision is `seedPool`'s, under an advisory lock so hosts seeded at the same
 * moment see each other's choices and spread). Reassignments change the row through the
 * `poolReassign` workflow's activities only.
 */
import { sql, type Kysely } from 'kysely';
import { DRAIN_TTL_MS, seedPool, type HostPoolView, type SeedDecision } from '../domain/pools.js';
import { readAliasViews } from './aliasesRepo.js';
import { parseHostStats } from './hostsRepo.js';
import { HostPoolState, PlacementState, PoolSource, type Database, type HostPoolRow } from './schema.js';

export const toHostPoolView = (r: Pick<HostPoolRow, 'alias' | 'state' | 'moved_at'> & { draining_since?: Date | null }): HostPoolView => ({
  alias: r.alias,
  state: r.state,
  movedAt: r.moved_at ? r.moved_at.toISOString() : null,
  ...(r.draining_since ? { drainingSince: r.draining_since.toISOString() } : {}),
});

/**
 * Marks a host drained for a rollout step (or refreshes the mark), or clears it; `hostId`
 * undefined with `draining: false` clears the stale drains only (older than DRAIN_TTL_MS: a
 * planner run that died mid-step), never a live run's.
 */
export async function setHostDraining(db: Kysely<Database>, o: { hostId?: string; draining: boolean }): Promise<void> {
  let q = db.updateTable('host_pools').set({ draining_since: o.draining ? sql<Date>`now()` : null });
  if (o.hostId !== undefined) q = q.where('host_id', '=', o.hostId);
  else if (o.draining) throw new RangeError('draining every host at once is never wanted');
  else q = q.where('draining_since', '<', sql<Date>`now() - make_interval(secs => ${DRAIN_TTL_MS / 1000})`);
  await q.execute();
}

export async function getHostPool(db: Kysely<Database>, hostId: string): Promise<HostPoolRow | undefined> {
  return db.selectFrom('host_pools').selectAll().where('host_id', '=', hostId).executeTakeFirst();
}

/**
 * Gives the host a pool if it has none: the alias of a build it runs, else of a build whose
 * file it has. Returns the decision (null: no alias matches yet; the next heartbeat retries).
 */
export async function seedHostPool(db: Kysely<Database>, hostId: string): Promise<SeedDecision | 'kept'> {
  return db.transaction().execute(async (tx) => {
    await sql`select pg_advisory_xact_lock(hashtext('fleet.pool-seed'))`.execute(tx);
    const existing = await tx.selectFrom('host_pools').select('alias').where('host_id', '=', hostId).executeTakeFirst();
    if (existing) return 'kept';
    const [host, placements, aliases, models, sizes] = await Promise.all([
      tx.selectFrom('hosts').select('stats').where('id', '=', hostId).executeTakeFirst(),
      tx.selectFrom('placements').select('model_id').where('host_id', '=', hostId).where('state', '=', PlacementState.Loaded).execute(),
      readAliasViews(tx),
      tx.selectFrom('models').select(['id', 'path']).where('kind', '=', 'gguf').execute(),
      tx.selectFrom('host_pools').select(['alias', sql<number>`count(*)::int`.as('n')]).where('alias', 'is not', null).groupBy('alias').execute(),
    ]);
    if (!host) return null;
    const stats = parseHostStats(host.stats, hostId);
    const files = new Set(stats.files ?? []);
    const decision = seedPool({
      hostId,
      running: [...new Set([...Object.keys(stats.models), ...placements.map((p) => p.model_id)])],
      advertised: models.filter((m) => m.path !== null && files.has(m.path)).map((m) => m.id),
      aliases,
      poolSizes: Object.fromEntries(sizes.map((s) => [s.alias!, Number(s.n)])),
    });
    if (decision) {
      await tx
        .insertInto('host_pools')
        .values({ host_id: hostId, alias: decision.alias, state: HostPoolState.Serving, source: decision.source })
        .onConflict((oc) => oc.column('host_id').doNothing())
        .execute();
    }
    return decision;
  });
}

/**
 * Marks the host as moving (it leaves every pool: routing stops offering it). Fails when a
 * move is already marked, so two reassignments of one host cannot interleave.
 */
export async function markHostMoving(db: Kysely<Database>, hostId: string): Promise<boolean> {
  const values = { state: HostPoolState.Moving, error: null, updated_at: sql<Date>`now()` };
  const result = await db
    .insertInto('host_pools')
    .values({ host_id: hostId, alias: null, source: PoolSource.Moved, ...values })
    .onConflict((oc) => oc.column('host_id').doUpdateSet(values).where('host_pools.state', '<>', HostPoolState.Moving))
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
}

export interface SetHostPoolInput {
  hostId: string;
  alias: string | null;
  state: HostPoolState;
  error?: string | null;
  /** Record this as a move (sets moved_at, the cool-down's start). */
  moved?: boolean;
  /** How the host got the pool, for a row created here (default 'moved'). */
  source?: PoolSource;
  /** Create the row only: a host that has a pool keeps it. */
  onlyIfAbsent?: boolean;
}

export async function setHostPool(db: Kysely<Database>, input: SetHostPoolInput): Promise<void> {
  const values = {
    alias: input.alias,
    state: input.state,
    error: input.error ?? null,
    updated_at: sql<Date>`now()`,
    ...(input.moved ? { source: PoolSource.Moved, moved_at: sql<Date>`now()` } : {}),
  };
  await db
    .insertInto('host_pools')
    .values({ host_id: input.hostId, source: input.source ?? PoolSource.Moved, ...values })
    .onConflict((oc) => (input.onlyIfAbsent ? oc.column('host_id').doNothing() : oc.column('host_id').doUpdateSet(values)))
    .execute();
}
