/**
 * GPU hosts: registration at worker start, heartbeats (with per-model load), and marking a host
 * down. `info` and `stats` are jsonb written by one process and read by others, so they are
 * validated with zod at both ends; a malformed value read back is logged and replaced by an
 * empty one rather than failing every routing decision that touches the host.
 */
import { sql, type Kysely } from 'kysely';
import { z } from 'zod';
import { MAX_ADVERTISED_PREFIXES } from '../common/prefixBlocks.js';
import { log } from '../logger.js';
import { HostStatus, type Database, type HostRow } from './schema.js';

/** Free-form host facts; the known keys are typed, anything else is kept as is. */
export const hostInfoSchema = z.looseObject({
  cpuCount: z.number().int().nonnegative().optional(),
  threads: z.number().int().nonnegative().optional(),
  /** node-llama-cpp's GPU type ('cuda' | 'vulkan' | 'metal'), or false on CPU. */
  gpu: z.union([z.string(), z.literal(false), z.null()]).optional(),
  memoryBytes: z.number().nonnegative().optional(),
  version: z.string().optional(),
  /** GPUs the host can use (0 on CPU). */
  gpuCount: z.number().int().nonnegative().optional(),
  /** Memory models load into: VRAM on a GPU host, RAM otherwise. */
  totalMemoryBytes: z.number().nonnegative().optional(),
  /** Models the host keeps loaded at once. */
  maxModelSlots: z.number().int().positive().optional(),
  /** Admission limits per model, so routing can skip a replica that would refuse. */
  maxInFlight: z.number().int().positive().optional(),
  maxQueue: z.number().int().nonnegative().optional(),
});
export type HostInfo = z.output<typeof hostInfoSchema>;

export const modelLoadSchema = z.object({
  running: z.number().int().nonnegative(),
  queued: z.number().int().nonnegative(),
  /** ISO time the model last served a request on this host. */
  lastUsedAt: z.string().nullable().optional(),
  /** KV cache tokens held, and the capacity, of the model's context sequences (absent from older hosts). */
  kvTokensUsed: z.number().int().nonnegative().optional(),
  kvTokensCapacity: z.number().int().nonnegative().optional(),
  /** Chained block hashes of the conversations its sequences hold (prefix-aware routing), bounded. */
  prefixes: z.array(z.string().regex(/^[0-9a-f]{16}$/)).max(MAX_ADVERTISED_PREFIXES).optional(),
  /** Sequences that served in the last minute (prefix routing places new conversations on hosts with fewer). */
  liveSequences: z.number().int().nonnegative().max(4096).optional(),
});
export type ModelLoad = z.output<typeof modelLoadSchema>;

/** What a heartbeat carries: load per model id (plus any extra keys a host adds). */
export const hostStatsSchema = z.looseObject({
  models: z.record(z.string(), modelLoadSchema).default({}),
  /** Free memory of the kind models load into (VRAM or RAM). */
  freeMemoryBytes: z.number().nonnegative().optional(),
  /** GGUF files present in the host's models folder (absolute paths). */
  files: z.array(z.string()).optional(),
  /** Fingerprint of the host's current identity key (refreshed after a rotation). */
  keyFingerprint: z.string().optional(),
});
export type HostStats = z.output<typeof hostStatsSchema>;
export type HostStatsInput = z.input<typeof hostStatsSchema>;

/** A host row with its jsonb columns validated. */
export type Host = Omit<HostRow, 'info' | 'stats'> & { info: HostInfo; stats: HostStats };

export function parseHostInfo(raw: unknown, hostId: string): HostInfo {
  const parsed = hostInfoSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  log.warn({ hostId, issues: parsed.error.issues.length }, 'ignoring malformed hosts.info');
  return {};
}

export function parseHostStats(raw: unknown, hostId: string): HostStats {
  const parsed = hostStatsSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  log.warn({ hostId, issues: parsed.error.issues.length }, 'ignoring malformed hosts.stats');
  return { models: {} };
}

function toHost(row: HostRow): Host {
  return { ...row, info: parseHostInfo(row.info, row.id), stats: parseHostStats(row.stats, row.id) };
}

/**
 * Registers a host (or re-registers it after a restart): status 'up', started_at and
 * last_heartbeat_at now, stats reset — a restarted host has nothing running.
 */
export async function upsertHost(
  db: Kysely<Database>,
  input: { id: string; taskQueue: string; info: HostInfo },
): Promise<Host> {
  const info = JSON.stringify(hostInfoSchema.parse(input.info));
  const stats = JSON.stringify({ models: {} });
  const row = await db
    .insertInto('hosts')
    .values({
      id: input.id,
      task_queue: input.taskQueue,
      status: HostStatus.Up,
      info,
      stats,
      started_at: sql<Date>`now()`,
      last_heartbeat_at: sql<Date>`now()`,
      suspect_since: null,
    })
    .onConflict((oc) =>
      oc.column('id').doUpdateSet({
        task_queue: input.taskQueue,
        status: HostStatus.Up,
        info,
        stats,
        started_at: sql<Date>`now()`,
        last_heartbeat_at: sql<Date>`now()`,
        suspect_since: null,
      }),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
  return toHost(row);
}

/**
 * Records a heartbeat: last_heartbeat_at now, the new stats, and status back to 'up' (one
 * success resets health). Returns false when the host is not registered.
 */
export async function recordHeartbeat(db: Kysely<Database>, id: string, stats: HostStatsInput): Promise<boolean> {
  const result = await db
    .updateTable('hosts')
    .set({
      stats: JSON.stringify(hostStatsSchema.parse(stats)),
      status: HostStatus.Up,
      last_heartbeat_at: sql<Date>`now()`,
      // Alive after all: a request that found it gone was early, or it came back.
      suspect_since: null,
    })
    .where('id', '=', id)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * Marks a host suspect: a request's generate there was never picked up or went silent. Routing
 * avoids it until its next heartbeat (recordHeartbeat clears the mark).
 */
export async function markHostSuspect(db: Kysely<Database>, id: string): Promise<void> {
  await db.updateTable('hosts').set({ suspect_since: sql<Date>`now()` }).where('id', '=', id).where('suspect_since', 'is', null).execute();
}

/** Marks a host down (graceful shutdown, or health policy). Returns false when unknown. */
export async function markHostDown(db: Kysely<Database>, id: string): Promise<boolean> {
  const result = await db
    .updateTable('hosts')
    .set({ status: HostStatus.Down })
    .where('id', '=', id)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function getHost(db: Kysely<Database>, id: string): Promise<Host | undefined> {
  const row = await db.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toHost(row);
}

export async function listHosts(db: Kysely<Database>): Promise<Host[]> {
  const rows = await db.selectFrom('hosts').selectAll().orderBy('id').execute();
  return rows.map(toHost);
}
