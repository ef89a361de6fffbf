/**
 * The snapshot routing and cold-load decisions are made from: the catalog entry of one model
 * and every host with all its placements and its last reported load. It is the result of a
 * Temporal local activity, so it is plain JSON (ISO strings, no Dates) and recorded in history.
 */
import type { Kysely } from 'kysely';
import type { CatalogModelView, FleetView, HostView } from '../domain/fleetView.js';
import type { PoolsView } from '../domain/pools.js';
import { readAliasViews } from './aliasesRepo.js';
import { toHostPoolView } from './poolsRepo.js';
import { parseHostInfo, parseHostStats } from './hostsRepo.js';
import type { Database, ModelRow } from './schema.js';

/** The fleet view without the heartbeat period (configuration, added by the caller). */
export type FleetState = Omit<FleetView, 'heartbeatIntervalMs' | 'pools'> & {
  pools: Pick<PoolsView, 'aliases' | 'hostPools'>;
};

/** Every host with its placements, load and pool, and every alias — no catalog entry. */
export type FleetHosts = Pick<FleetState, 'hosts' | 'pools'>;

/**
 * GGUF builds with their pin sets (a left join: one query for both). Remote builds are not part
 * of the fleet's view: placement, pools, the planner and own-host attestation never see them.
 */
const catalogQuery = (db: Kysely<Database>) =>
  db
    .selectFrom('models as m')
    .leftJoin('pin_sets as ps', 'ps.model_id', 'm.id')
    .select(['m.id', 'm.kind', 'm.context_length', 'm.sha256', 'm.path', 'm.size_bytes', 'm.verifiable', 'm.quarantine_reason', 'ps.fingerprints']);

/**
 * `by: 'alias'` resolves a public model id to its desired (and previous) build, as requests
 * do; `by: 'build'` reads one catalog entry as is (cold loads, discovery cycles).
 */
export async function readFleetState(db: Kysely<Database>, id: string, by: 'alias' | 'build' = 'build', retried = false): Promise<FleetState> {
  // Three queries in parallel, as many as before aliases: an alias's builds come through
  // subqueries (no extra round trip), pin sets with their builds, pools with their hosts.
  const aliasRow = db.selectFrom('aliases').where('aliases.id', '=', id);
  const [{ hosts, pools }, models] = await Promise.all([
    readFleetHosts(db),
    catalogQuery(db)
      .where((eb) =>
        by === 'alias'
          ? eb.or([
              eb('m.id', 'in', aliasRow.select('desired_build')),
              eb('m.id', 'in', aliasRow.select('previous_build').where('previous_build', 'is not', null).$narrowType<{ previous_build: string }>()),
            ])
          : eb('m.id', '=', id),
      )
      .execute(),
  ]);
  const alias = by === 'alias' ? pools.aliases.find((a) => a.id === id) : undefined;
  const modelId = by === 'alias' ? alias?.desired : id;
  if (modelId === undefined) return { model: null, hosts: [], pools };
  // The alias changed between the parallel reads (a rollout began): read again, once.
  if (alias && !retried && !models.some((m) => m.id === alias.desired)) return readFleetState(db, id, by, true);

  const entry = (buildId: string | null | undefined): CatalogModelView | undefined => {
    const m = models.find((x) => x.id === buildId && x.kind === 'gguf');
    return m ? toCatalogView(m, fingerprintsOf(m.fingerprints)) : undefined;
  };
  const previous = entry(alias?.previous);
  return {
    model: entry(modelId) ?? null,
    ...(previous ? { previous } : {}),
    ...(alias ? { alias } : {}),
    hosts,
    pools,
  };
}

/**
 * Every host with its placements, last reported load and pool, and every alias: what routing
 * filters, and all the pools overview, the gauges and the warm-pool planner need.
 */
export async function readFleetHosts(db: Kysely<Database>): Promise<FleetHosts> {
  const [aliases, hosts] = await Promise.all([readAliasViews(db), readHostViews(db)]);
  return { hosts: hosts.hosts, pools: { aliases, hostPools: hosts.hostPools } };
}

/**
 * Hosts with their placements, load and pool — every host, or only `ids` (what a load change
 * notified: src/api/fleetSnapshot.ts re-reads just those).
 */
export async function readHostViews(db: Kysely<Database>, ids?: readonly string[]): Promise<{ hosts: HostView[]; hostPools: FleetHosts['pools']['hostPools'] }> {
  if (ids && ids.length === 0) return { hosts: [], hostPools: {} };
  // One statement, so hosts, their placements and their pools come from the same snapshot.
  const rows = await db
    .selectFrom('hosts as h')
    .leftJoin('placements as p', 'p.host_id', 'h.id')
    .leftJoin('host_pools as hp', 'hp.host_id', 'h.id')
    .select([
      'h.id',
      'h.task_queue',
      'h.status',
      'h.last_heartbeat_at',
      'h.stats',
      'h.info',
      'h.suspect_since',
      'p.model_id',
      'p.state',
      'p.last_used_at',
      'hp.alias as pool_alias',
      'hp.state as pool_state',
      'hp.moved_at as pool_moved_at',
      'hp.draining_since as pool_draining_since',
    ])
    .$if(ids !== undefined, (q) => q.where('h.id', 'in', ids!))
    .orderBy('h.id')
    .orderBy('p.model_id')
    .execute();
  const hostPools: FleetHosts['pools']['hostPools'] = {};
  const hosts = new Map<string, HostView>();
  for (const row of rows) {
    let host = hosts.get(row.id);
    if (!host) {
      const stats = parseHostStats(row.stats, row.id);
      const info = parseHostInfo(row.info, row.id);
      host = {
        id: row.id,
        status: row.status,
        lastHeartbeatAt: row.last_heartbeat_at.toISOString(),
        placements: [],
        load: Object.fromEntries(
          Object.entries(stats.models).map(([id, l]) => [id, { running: l.running, queued: l.queued, lastUsedAt: l.lastUsedAt ?? null, ...(l.prefixes?.length ? { prefixes: l.prefixes } : {}), ...(l.liveSequences ? { liveSequences: l.liveSequences } : {}) }]),
        ),
        capacity: {
          maxModelSlots: info.maxModelSlots ?? 1,
          gpuCount: info.gpuCount ?? 0,
          totalMemoryBytes: info.totalMemoryBytes ?? info.memoryBytes ?? 0,
          freeMemoryBytes: stats.freeMemoryBytes ?? 0,
          // Omitted when unknown: the view is plain JSON (a local-activity result).
          ...(info.maxInFlight !== undefined ? { maxInFlight: info.maxInFlight } : {}),
          ...(info.maxQueue !== undefined ? { maxQueue: info.maxQueue } : {}),
        },
        files: stats.files ?? [],
        ...(stats.keyFingerprint !== undefined ? { keyFingerprint: stats.keyFingerprint } : {}),
        ...(row.suspect_since !== null ? { suspect: true as const } : {}),
      };
      hosts.set(row.id, host);
    }
    if (row.model_id !== null && row.state !== null) {
      host.placements.push({
        modelId: row.model_id,
        state: row.state,
        lastUsedAt: row.last_used_at ? row.last_used_at.toISOString() : null,
      });
    }
    if (row.pool_state !== null && !hostPools[row.id]) {
      hostPools[row.id] = toHostPoolView({ alias: row.pool_alias, state: row.pool_state, moved_at: row.pool_moved_at, draining_since: row.pool_draining_since });
    }
  }
  return { hosts: [...hosts.values()], hostPools };
}

const fingerprintsOf = (raw: unknown): string[] =>
  Array.isArray(raw) ? (raw as unknown[]).filter((x): x is string => typeof x === 'string') : [];

type ModelColumns = Pick<ModelRow, 'id' | 'context_length' | 'sha256' | 'path' | 'size_bytes' | 'verifiable' | 'quarantine_reason'>;

function toCatalogView(m: ModelColumns, pinned: string[]): CatalogModelView {
  return {
    id: m.id,
    contextLength: m.context_length,
    // A gguf row always has these (the models_kind_shape check constraint).
    sha256: m.sha256 ?? '',
    path: m.path ?? '',
    sizeBytes: Number(m.size_bytes ?? 0),
    // Only for a verifiable model, so other models' views (and histories) keep their shape.
    ...(m.verifiable ? { verifiable: true, pinnedFingerprints: pinned } : {}),
    ...(m.quarantine_reason !== null ? { quarantined: { reason: m.quarantine_reason } } : {}),
  };
}

/** Every build of the catalog as routing sees it (the warm-pool planner's input). */
export async function readCatalogViews(db: Kysely<Database>): Promise<Record<string, CatalogModelView>> {
  const models = await catalogQuery(db).where('m.kind', '=', 'gguf').orderBy('m.id').execute();
  return Object.fromEntries(models.map((m) => [m.id, toCatalogView(m, fingerprintsOf(m.fingerprints))]));
}
