/**
 * The snapshot routing and cold-load decisions are made from: the catalog entry of one model
 * and every host with all its placements and its last reported load. It is the result of a
 * Temporal local activity, so it is plain JSON (ISO strings, no Dates) and recorded in history.
 */
import type { Kysely } from 'kysely';
import { parseHostStats, type ModelLoad } from './hostsRepo.js';
import type { Database, HostStatus, PlacementState } from './schema.js';

export interface FleetModelState {
  id: string;
  contextLength: number;
  sha256: string;
  path: string;
}

export interface FleetPlacementState {
  modelId: string;
  state: PlacementState;
  /** ISO timestamp, or null if it never served. */
  lastUsedAt: string | null;
}

export interface FleetHostState {
  id: string;
  taskQueue: string;
  status: HostStatus;
  /** ISO timestamp of the host's last heartbeat. */
  lastHeartbeatAt: string;
  /** Every placement on the host (any model), by model id — eviction needs all of them. */
  placements: FleetPlacementState[];
  /** Running/queued per model id, from the last heartbeat. */
  load: Record<string, ModelLoad>;
}

export interface FleetState {
  model: FleetModelState | null;
  hosts: FleetHostState[];
}

export async function readFleetState(db: Kysely<Database>, modelId: string): Promise<FleetState> {
  const [model, rows] = await Promise.all([
    db
      .selectFrom('models')
      .select(['id', 'context_length', 'sha256', 'path'])
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
        'p.model_id',
        'p.state',
        'p.last_used_at',
      ])
      .orderBy('h.id')
      .orderBy('p.model_id')
      .execute(),
  ]);

  const hosts = new Map<string, FleetHostState>();
  for (const row of rows) {
    let host = hosts.get(row.id);
    if (!host) {
      host = {
        id: row.id,
        taskQueue: row.task_queue,
        status: row.status,
        lastHeartbeatAt: row.last_heartbeat_at.toISOString(),
        placements: [],
        load: parseHostStats(row.stats, row.id).models,
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
      ? { id: model.id, contextLength: model.context_length, sha256: model.sha256, path: model.path }
      : null,
    hosts: [...hosts.values()],
  };
}
