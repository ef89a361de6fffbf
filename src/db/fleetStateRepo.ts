/**
 * The snapshot routing and cold-load decisions are made from: the catalog entry of one model
 * and every host with all its placements and its last reported load. It is the result of a
 * Temporal local activity, so it is plain JSON (ISO strings, no Dates) and recorded in history.
 */
import type { Kysely } from 'kysely';
import type { CatalogModelView, FleetView, HostView } from '../domain/fleetView.js';
import type { PoolsView } from '../domain/pools.js';
import { toAliasView } from './aliasesRepo.js';
import { toHostPoolView } from './poolsRepo.js';
import { parseHostInfo, parseHostStats } from './hostsRepo.js';
import type { Database, ModelRow } from './schema.js';

/** The fleet view without the heartbeat period (configuration, added by the caller). */
export type FleetState = Omit<FleetView, 'heartbeatIntervalMs' | 'pools'> & {
  pools: Pick<PoolsView, 'aliases' | 'hostPools'>;
};

/**
 * `by: 'alias'` resolves a public model id to its desired (and previous) build, as requests
 * do; `by: 'build'` reads one catalog entry as is (cold loads, discovery cycles).
 */
export async function readFleetState(db: Kysely<Database>, id: string, by: 'alias' | 'build' = 'build', retried = false): Promise<FleetState> {
  // Three queries in parallel, as many as before aliases: an alias's builds come through
  // subqueries (no extra round trip), pin sets with their builds, pools with their hosts.
  const aliasRow = db.selectFrom('aliases').where('aliases.id', '=', id);
  const [aliases, models, rows] = await Promise.all([
    db.selectFrom('aliases').select(['id', 'desired_build', 'previous_build', 'min_warm']).orderBy('id').execute(),
    db
      .selectFrom('models as m')
      .leftJoin('pin_sets as ps', 'ps.model_id', 'm.id')
      .select(['m.id', 'm.context_length', 'm.sha256', 'm.path', 'm.size_bytes', 'm.verifiable', 'ps.fingerprints'])
      .where((eb) =>
        by === 'alias'
          ? eb.or([
              eb('m.id', 'in', aliasRow.select('desired_build')),
              eb('m.id', 'in', aliasRow.select('previous_build').where('previous_build', 'is not', null).$narrowType<{ previous_build: string }>()),
            ])
          : eb('m.id', '=', id),
      )
      .execute(),
    // One statement, so hosts, their placements and their pools come from the same snapshot.
    db
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
        'p.model_id',
        'p.state',
        'p.last_used_at',
        'hp.alias as pool_alias',
        'hp.state as pool_state',
        'hp.moved_at as pool_moved_at',
      ])
      .orderBy('h.id')
      .orderBy('p.model_id')
      .execute(),
  ]);
  const pools: FleetState['pools'] = { aliases: aliases.map(toAliasView), hostPools: {} };
  for (const r of rows) {
    if (r.pool_state !== null && !pools.hostPools[r.id]) {
      pools.hostPools[r.id] = toHostPoolView({ alias: r.pool_alias, state: r.pool_state, moved_at: r.pool_moved_at });
    }
  }
  const alias = by === 'alias' ? pools.aliases.find((a) => a.id === id) : undefined;
  const modelId = by === 'alias' ? alias?.desired : id;
  if (modelId === undefined) return { model: null, hosts: [], pools };
  // The alias changed between the parallel reads (a rollout began): read again, once.
  if (alias && !retried && !models.some((m) => m.id === alias.desired)) return readFleetState(db, id, by, true);

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
          Object.entries(stats.models).map(([id, l]) => [id, { running: l.running, queued: l.queued, lastUsedAt: l.lastUsedAt ?? null }]),
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
  }

  const entry = (buildId: string | null | undefined): CatalogModelView | undefined => {
    const m = models.find((x) => x.id === buildId);
    return m ? toCatalogView(m, fingerprintsOf(m.fingerprints)) : undefined;
  };
  const previous = entry(alias?.previous);
  return {
    model: entry(modelId) ?? null,
    ...(previous ? { previous } : {}),
    ...(alias ? { alias } : {}),
    hosts: [...hosts.values()],
    pools,
  };
}

const fingerprintsOf = (raw: unknown): string[] =>
  Array.isArray(raw) ? (raw as unknown[]).filter((x): x is string => typeof x === 'string') : [];

type ModelColumns = Pick<ModelRow, 'id' | 'context_length' | 'sha256' | 'path' | 'size_bytes' | 'verifiable'>;

function toCatalogView(m: ModelColumns, pinned: string[]): CatalogModelView {
  return {
    id: m.id,
    contextLength: m.context_length,
    sha256: m.sha256,
    path: m.path,
    sizeBytes: Number(m.size_bytes),
    // Only for a verifiable model, so other models' views (and histories) keep their shape.
    ...(m.verifiable ? { verifiable: true, pinnedFingerprints: pinned } : {}),
  };
}

/** Every build of the catalog as routing sees it (the warm-pool planner's input). */
export async function readCatalogViews(db: Kysely<Database>): Promise<Record<string, CatalogModelView>> {
  const [models, pins] = await Promise.all([
    db.selectFrom('models').select(['id', 'context_length', 'sha256', 'path', 'size_bytes', 'verifiable']).orderBy('id').execute(),
    db.selectFrom('pin_sets').select(['model_id', 'fingerprints']).execute(),
  ]);
  const pinsOf = new Map(pins.map((p) => [p.model_id, fingerprintsOf(p.fingerprints)]));
  return Object.fromEntries(models.map((m) => [m.id, toCatalogView(m, pinsOf.get(m.id) ?? [])]));
}
