/**
 * Renders `fleet status`: the hosts of `GET /admin/hosts` as a plain-text table — health,
 * model slots, and per placement its state, running/queued requests and, while loading, a
 * progress bar. Pure (no I/O, no clock), so the CLI's one-shot and `--watch` modes share it
 * and it is tested on its own. The response is validated here, at the boundary, because the
 * CLI may talk to an API of another version.
 */
import { z } from 'zod';
import { renderTable } from './textTable.js';

const placementSchema = z.object({
  model: z.string(),
  state: z.string(),
  progress: z.number(),
  error: z.string().nullable().optional(),
  running: z.number().optional(),
  queued: z.number().optional(),
});

const hostSchema = z.object({
  id: z.string(),
  status: z.string(),
  healthy: z.boolean(),
  /** null when no heartbeat time is known (JSON has no Infinity). */
  missed_heartbeats: z.number().nullable(),
  /** A request found it gone since its last heartbeat (absent from older APIs). */
  suspect: z.boolean().optional(),
  slots: z.object({ used: z.number(), total: z.number().nullable() }).optional(),
  placements: z.array(placementSchema),
});

const quarantineSchema = z.object({ build: z.string(), reason: z.string(), host: z.string().nullable(), since: z.string() });

/** The part of the `GET /admin/hosts` response the status view reads. */
export const hostsResponseSchema = z.object({
  data: z.array(hostSchema),
  /** Absent from APIs older than quarantine. */
  quarantined: z.array(quarantineSchema).optional(),
  replicas: z.array(z.object({ replica: z.string(), consecutive_failures: z.number(), demoted: z.boolean() })).optional(),
});
export type QuarantineView = z.infer<typeof quarantineSchema>;
export type HostStatusView = z.infer<typeof hostSchema>;
export type PlacementStatusView = z.infer<typeof placementSchema>;

/** Cells of the progress bar: `[#######-------] 52%` at the default width. */
export const PROGRESS_WIDTH = 14;

/** A text progress bar; the bar fills only at 100 %, so "full" never hides remaining work. */
export function progressBar(fraction: number, width = PROGRESS_WIDTH): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const filled = Math.floor(f * width);
  // The epsilon keeps 0.29 from printing as 28 % (0.29 * 100 is 28.999… in floating point).
  const percent = Math.floor(f * 100 + 1e-9);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${percent}%`;
}

export function healthLabel(h: Pick<HostStatusView, 'status' | 'healthy' | 'missed_heartbeats' | 'suspect'>): string {
  if (h.status === 'down') return 'down';
  if (h.healthy) return 'healthy';
  if (h.suspect) return 'suspect (gone?)';
  return `unhealthy (${h.missed_heartbeats ?? '?'} missed)`;
}

function slotsLabel(h: HostStatusView): string {
  if (!h.slots) return '?';
  return `${h.slots.used}/${h.slots.total ?? '?'}`;
}

/** Requests only mean something for a model that can serve. */
function requestsLabel(p: PlacementStatusView): string {
  if (p.state !== 'loaded' && p.state !== 'unloading') return '-';
  return `${p.running ?? 0}/${p.queued ?? 0}`;
}

function detailLabel(p: PlacementStatusView): string {
  if (p.state === 'loading') return progressBar(p.progress);
  if (p.state === 'failed' && p.error) return p.error.length > 60 ? `${p.error.slice(0, 59)}…` : p.error;
  return '';
}

const HEADER = ['HOST', 'HEALTH', 'SLOTS', 'MODEL', 'STATE', 'RUN/QUEUED', 'LOAD'];

/**
 * The table, one line per placement (host columns on the first line of each host). Unloaded
 * placements are left out: they are history (every model a host ever held), not state.
 */
export function renderStatus(
  hosts: readonly HostStatusView[],
  quarantined: readonly QuarantineView[] = [],
  replicas: ReadonlyArray<{ replica: string; consecutive_failures: number; demoted: boolean }> = [],
): string {
  const notes = [
    ...quarantined.map((q) => `quarantined: ${q.build} since ${q.since}${q.host ? ` (on ${q.host})` : ''}: ${q.reason}  — fleet models release ${q.build}`),
    ...replicas.filter((r) => r.demoted).map((r) => `demoted: ${r.replica} (${r.consecutive_failures} failures in a row; sorts after the next tier until it succeeds)`),
  ];
  const tail = notes.length ? `${notes.join('\n')}\n` : '';
  if (hosts.length === 0) return `no hosts registered\n${tail}`;
  const rows: string[][] = [HEADER];
  for (const h of hosts) {
    const hostCells = [h.id, healthLabel(h), slotsLabel(h)];
    const shown = h.placements.filter((p) => p.state !== 'unloaded');
    if (shown.length === 0) rows.push([...hostCells, '-', '', '', '']);
    shown.forEach((p, i) => {
      rows.push([...(i === 0 ? hostCells : ['', '', '']), p.model, p.state, requestsLabel(p), detailLabel(p)]);
    });
  }
  return renderTable(rows) + tail;
}
