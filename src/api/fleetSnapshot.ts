/**
 * The API's fleet snapshot: the routing snapshot (src/db/routingSnapshot.ts) kept in memory and
 * current by the database's change notifications (migration 0011), so a request's first route
 * decision is made here, without a query, and passed in the workflow input; the workflow then
 * starts `generate` in its first task instead of running its route step first. Only a decision
 * to serve now is passed on: a cold load, a pool move, a wait or a not-found is left to the
 * workflow's own route step, which reads the database, and every later round (a failover) is
 * routed there too.
 *
 * Freshness: after a structural change (a host's status, a pool, an alias, a build, a provider,
 * replica health) is notified, nothing is routed from the snapshot until it has been read again;
 * a load change (a host's running/queued counts, its heartbeat) is read at most every 50 ms,
 * since routing by a load a moment old is what heartbeats always gave and the host's admission
 * queue decides anyway. Everything is read again every second whatever was notified (a NOTIFY
 * sent while the listener reconnected is lost); a snapshot that could not be read for 5 s is not
 * routed from. No snapshot (not read yet, the listener down): the workflow routes, as before.
 */
import type { DbHandle } from '../db/connect.js';
import { readRoutingSnapshot, refreshHosts, routeViewFor, type RouteConfig, type RoutingSnapshot } from '../db/routingSnapshot.js';
import type { ServeDecision } from '../common/inference.js';
import { planRequest } from '../domain/requestPlan.js';
import type { Logger } from '../logger.js';

/** The notification channel migration 0011's triggers send on. */
export const FLEET_CHANGES_CHANNEL = 'fleet_changes';
const LOAD_REFRESH_MS = 50;
const FULL_REFRESH_MS = 1000;
const MAX_AGE_MS = 5000;
/** After a failed read, the next one waits this long. */
const RETRY_MS = 500;

export interface FleetSnapshot {
  /** The first round's decision when the snapshot is current and says "serve now"; else undefined. */
  preRoute(o: { alias: string; requestId: string; stream: boolean }): ServeDecision | undefined;
  close(): Promise<void>;
}

export async function startFleetSnapshot(o: { db: DbHandle; config: RouteConfig; log: Logger }): Promise<FleetSnapshot> {
  const log = o.log.child({ component: 'fleet-snapshot' });
  let snap: RoutingSnapshot | undefined;
  /** Structural changes notified, and how many of them the last full read had seen. */
  let notified = 0;
  let read = -1;
  let fullAt = 0;
  let loadAt = 0;
  let loadPending = false;
  let fullDue = true;
  let pumping = false;
  let closed = false;
  let loadTimer: NodeJS.Timeout | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let failing = false;

  // One read at a time; a notification during a read is served by the next turn of the loop.
  async function pump(): Promise<void> {
    if (pumping || closed) return;
    pumping = true;
    try {
      while (!closed) {
        if (fullDue || notified !== read || !snap) {
          const seen = notified;
          fullDue = false;
          snap = await readRoutingSnapshot(o.db.db);
          read = seen;
          fullAt = loadAt = Date.now();
          loadPending = false;
        } else if (loadPending) {
          loadPending = false;
          snap = await refreshHosts(o.db.db, snap);
          loadAt = Date.now();
        } else break;
        if (failing) log.info('fleet snapshot read again');
        failing = false;
      }
    } catch (err) {
      if (!failing) log.warn({ err: (err as Error).message }, 'fleet snapshot: reading the fleet failed; requests route in their workflow until it reads again');
      failing = true;
      fullDue = true;
      retryTimer ??= setTimeout(() => {
        retryTimer = undefined;
        void pump();
      }, RETRY_MS).unref();
    } finally {
      pumping = false;
    }
  }

  function onChange(payload: string): void {
    if (payload !== 'load') {
      notified++;
      setImmediate(() => void pump());
      return;
    }
    loadPending = true;
    if (loadTimer) return;
    loadTimer = setTimeout(() => {
      loadTimer = undefined;
      void pump();
    }, Math.max(0, loadAt + LOAD_REFRESH_MS - Date.now())).unref();
  }

  const unlisten = await o.db.listen(FLEET_CHANGES_CHANNEL, onChange);
  const fullTimer = setInterval(() => {
    fullDue = true;
    void pump();
  }, FULL_REFRESH_MS).unref();
  await pump();

  return {
    preRoute({ alias, requestId, stream }) {
      const now = Date.now();
      if (!snap || notified !== read || now - fullAt > MAX_AGE_MS) return undefined;
      const { view, consistent } = routeViewFor(snap, alias, o.config);
      if (!consistent) return undefined;
      const decision = planRequest(view, { now, requestId, stream, exclude: [], joinLoads: true });
      return decision.kind === 'serve' ? decision : undefined;
    },
    async close() {
      closed = true;
      clearInterval(fullTimer);
      clearTimeout(loadTimer);
      clearTimeout(retryTimer);
      await unlisten().catch(() => undefined);
    },
  };
}
