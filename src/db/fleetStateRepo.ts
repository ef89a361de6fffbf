/**
 * The snapshot routing and cold-load decisions are made from: the catalog entry of one model
 * and every host with all its placements and its last reported load. It is the result of a
 * Temporal local activity, so it is plain JSON (ISO strings, no Dates) and recorded in history.
 */
import type { Kysely } from 'kysely';
import type { FleetView, HostView } from '../domain/fleetView.js';
import { parseHostInfo, parseHostStats } from './hostsRepo.js';
import type { Database } from './schema.js';

/** The fleet view without the heartbeat period (configuration, added by the caller). */
export type FleetState = Omit<FleetView, 'heartbeatIntervalMs'>;

export async function readFleetState(db: Kysely<Database>, modelId: string): Promise<FleetState> {
  const [model, rows, pins] = await Promise.all([
    db
      .selectFrom('models')
      .select(['id', 'context_length', 'sha256', 'path', 'size_bytes', 'verifiable'])
      .where('id', '=', modelId)
      .executeTakeFirst(),
    // One statement, so hosts and their placements come from the same snapshot.
    db
      .selectFrom('hosts as h')
      .leftJoin('placements as p', 'p.host_id', 'h.id')
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
      ])
      .orderBy('h.id')
      .orderBy('p.model_id')
      .execute(),
    db.selectFrom('pin_sets').select('fingerprints').where('model_id', '=', modelId).executeTakeFirst(),
  ]);
  const pinned = Array.isArray(pins?.fingerprints) ? (pins.fingerprints as unknown[]).filter((x): x is string => typeof x === 'string') : [];

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

  return {
    model: model
      ? {
          id: model.id,
          contextLength: model.context_length,
          sha256: model.sha256,
          path: model.path,
          sizeBytes: Number(model.size_bytes),
          // Only for a verifiable model, so other models' views (and histories) keep their shape.
          ...(model.verifiable ? { verifiable: true, pinnedFingerprints: pinned } : {}),
        }
      : null,
    hosts: [...hosts.values()],
  };
}
