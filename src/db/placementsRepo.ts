/**
 * Placements: the state of one model on one host (unloaded → loading → loaded → unloading, or
 * failed), the load progress, and when it last served a request (for LRU eviction).
 * State changes and "last used" are written by different activities at different rates, so
 * each touches only its own columns and neither can undo the other.
 */
import { sql, type Kysely } from 'kysely';
import { PlacementState, type Database, type PlacementRow } from './schema.js';

export interface SetPlacementStateInput {
  hostId: string;
  modelId: string;
  state: PlacementState;
  /** 0..1. Defaults to 1 for 'loaded' and 0 otherwise. */
  progress?: number;
  /** Defaults to null: a new state clears the previous error. */
  error?: string | null;
}

/** Creates or updates the placement's state; `last_used_at` is left as it is. */
export async function setPlacementState(db: Kysely<Database>, input: SetPlacementStateInput): Promise<PlacementRow> {
  const progress = input.progress ?? (input.state === PlacementState.Loaded ? 1 : 0);
  if (!(progress >= 0 && progress <= 1)) {
    throw new RangeError(`placement progress must be within 0..1, got ${progress}`);
  }
  const values = { state: input.state, progress, error: input.error ?? null, updated_at: sql<Date>`now()` };
  return db
    .insertInto('placements')
    .values({ host_id: input.hostId, model_id: input.modelId, ...values })
    .onConflict((oc) => oc.columns(['host_id', 'model_id']).doUpdateSet(values))
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * Records that the placement served a request at `at`. Never moves last_used_at backwards, so
 * out-of-order touches from concurrent requests settle on the latest. Returns false when the
 * placement does not exist.
 */
export async function touchPlacement(db: Kysely<Database>, hostId: string, modelId: string, at: Date): Promise<boolean> {
  const result = await db
    .updateTable('placements')
    // greatest() ignores NULL, so a first touch simply sets it.
    .set({ last_used_at: sql<Date>`greatest(last_used_at, ${at}::timestamptz)` })
    .where('host_id', '=', hostId)
    .where('model_id', '=', modelId)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function getPlacement(
  db: Kysely<Database>,
  hostId: string,
  modelId: string,
): Promise<PlacementRow | undefined> {
  return db
    .selectFrom('placements')
    .selectAll()
    .where('host_id', '=', hostId)
    .where('model_id', '=', modelId)
    .executeTakeFirst();
}

export async function listPlacements(db: Kysely<Database>, filter: { modelId?: string } = {}): Promise<PlacementRow[]> {
  let query = db.selectFrom('placements').selectAll();
  if (filter.modelId !== undefined) query = query.where('model_id', '=', filter.modelId);
  return query.orderBy('host_id').orderBy('model_id').execute();
}

/**
 * Marks every placement of a host `unloaded`: a host process that (re)starts or stops holds
 * no model, whatever the table said. Returns how many rows changed.
 */
export async function resetHostPlacements(db: Kysely<Database>, hostId: string): Promise<number> {
  const result = await db
    .updateTable('placements')
    .set({ state: PlacementState.Unloaded, progress: 0, error: null, updated_at: sql<Date>`now()` })
    .where('host_id', '=', hostId)
    .where('state', '!=', PlacementState.Unloaded)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/**
 * Load progress from the host, written only while the placement is still `loading`: the
 * host's (throttled, unordered) progress writes must never undo the state the coldLoad
 * workflow recorded after the load finished.
 */
export async function setLoadProgress(db: Kysely<Database>, hostId: string, modelId: string, progress: number): Promise<void> {
  await db
    .updateTable('placements')
    .set({ progress: Math.min(1, Math.max(0, progress)), updated_at: sql<Date>`now()` })
    .where('host_id', '=', hostId)
    .where('model_id', '=', modelId)
    .where('state', '=', PlacementState.Loading)
    .execute();
}

export type LoadClaim =
  /** A usable host already has it loaded: nothing to load. */
  | { kind: 'loaded'; hostId: string }
  /** A load is under way on this host: wait for it. */
  | { kind: 'loading'; hostId: string }
  /** This caller claimed the load on the requested host. */
  | { kind: 'claimed'; hostId: string };

/**
 * Single flight per model: claims "`modelId` is loading on `hostId`" unless a usable host
 * already holds the model or is loading it. Serialized per model with a transaction-scoped
 * advisory lock, so a burst of requests that each decided to cold-load (from slightly
 * different snapshots, possibly on different hosts) ends in one load. `usable` is the
 * caller's rule (health — hosts that died keep their rows until they come back — and pool).
 */
export async function claimModelLoad(
  db: Kysely<Database>,
  hostId: string,
  modelId: string,
  usable: (host: { id: string; status: string; lastHeartbeatAt: string; suspect: boolean }) => boolean,
): Promise<LoadClaim> {
  return db.transaction().execute(async (tx) => {
    await sql`select pg_advisory_xact_lock(hashtext(${`fleet.load:${modelId}`}))`.execute(tx);
    const rows = await tx
      .selectFrom('placements as p')
      .innerJoin('hosts as h', 'h.id', 'p.host_id')
      .select(['p.host_id', 'p.state', 'h.status', 'h.last_heartbeat_at', 'h.suspect_since'])
      .where('p.model_id', '=', modelId)
      .where('p.state', 'in', [PlacementState.Loaded, PlacementState.Loading])
      .orderBy('p.host_id')
      .execute();
    const live = rows.filter((r) =>
      usable({ id: r.host_id, status: r.status, lastHeartbeatAt: r.last_heartbeat_at.toISOString(), suspect: r.suspect_since !== null }),
    );
    const loaded = live.find((r) => r.state === PlacementState.Loaded);
    if (loaded) return { kind: 'loaded', hostId: loaded.host_id };
    const loading = live.find((r) => r.state === PlacementState.Loading);
    if (loading) return { kind: 'loading', hostId: loading.host_id };
    await setPlacementState(tx, { hostId, modelId, state: PlacementState.Loading, progress: 0 });
    return { kind: 'claimed', hostId };
  });
}
