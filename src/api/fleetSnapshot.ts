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
 * a load change (a host's running/queued counts, its heartbeat) re-reads that host alone, at
 * once (notifications that arrive during a read are served together by the next one), so a
 * decision sees loads as fresh as a query would. Everything is read again every second whatever was notified (a NOTIFY
 * sent while the listener reconnected is lost); a snapshot that could not be read for 5 s is not
 * routed from. No snapshot (not read yet, the listener down): the workflow routes, as before.
 */
import type { DbHandle } from '../db/connect.js';
import { readRoutingSnapshot, refreshHosts, routeViewFor, type RouteConfig, type RoutingSnapshot } from '../db/routingSnapshot.js';
import type { ServeDecision } from '../common/inference.js';
import { withLocalFacts } from '../domain/localFacts.js';
import { lastKnownBlock, type RequestPrefix } from '../domain/prefixRouting.js';
import { planRequest } from '../domain/requestPlan.js';
import type { Logger } from '../logger.js';
import { setRecent } from '../common/recentMap.js';

/** The notification channel migration 0011's triggers send on. */
export const FLEET_CHANGES_CHANNEL = 'fleet_changes';
const FULL_REFRESH_MS = 1000;
const MAX_AGE_MS = 5000;
/** After a failed read, the next one waits this long. */
const RETRY_MS = 500;
/** Conversations this process answered, remembered this long (the host's heartbeat says it by then), at most this many. */
const ANSWERED_TTL_MS = 30_000;
const MAX_ANSWERED = 10_000;
/** A pre-routed request not settled after this long is forgotten (the API settles every one; this only bounds a leak). */
const PLACED_TTL_MS = 15 * 60_000;

export interface FleetSnapshot {
  /** The first round's decision when the snapshot is current and says "serve now"; else undefined. */
  preRoute(o: { alias: string; requestId: string; stream: boolean; prefix?: RequestPrefix }): ServeDecision | undefined;
  /**
   * A host of ours answered this conversation (its blocks, answer included): until the host's
   * own heartbeat says it holds it, this process knows it did — the next turn usually arrives
   * before that heartbeat is read.
   */
  answered(o: { hostId: string; blocks: readonly string[] }): void;
  /** This process starts a request on `decision` (its first host counts as busier until it is settled). */
  dispatched(requestId: string, decision: ServeDecision): void;
  /** A request this process dispatched has ended (answered, failed or cancelled). */
  settled(requestId: string): void;
  close(): Promise<void>;
}

export async function startFleetSnapshot(o: { db: DbHandle; config: RouteConfig; log: Logger }): Promise<FleetSnapshot> {
  const log = o.log.child({ component: 'fleet-snapshot' });
  let snap: RoutingSnapshot | undefined;
  /** Structural changes notified, and how many of them the last full read had seen. */
  let notified = 0;
  let read = -1;
  let fullAt = 0;
  /** Hosts whose load changed since they were last read. */
  const dirtyHosts = new Set<string>();
  let fullDue = true;
  let pumping = false;
  let closed = false;
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
          dirtyHosts.clear();
          snap = await readRoutingSnapshot(o.db.db);
          read = seen;
          fullAt = Date.now();
        } else if (dirtyHosts.size > 0) {
          const ids = [...dirtyHosts];
          dirtyHosts.clear();
          snap = await refreshHosts(o.db.db, snap, ids);
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
    if (payload === 'load') return; // a placement's load progress: routing does not use it
    if (payload.startsWith('load:')) dirtyHosts.add(payload.slice('load:'.length));
    else notified++;
    void pump();
  }

  /** Last block of an answered conversation → the host that answered it, and when. */
  const answered = new Map<string, { hostId: string; at: number }>();
  const recall = (blocks: readonly string[], now: number) => {
    const known = lastKnownBlock(blocks, (h) => {
      const a = answered.get(h);
      return a && now - a.at < ANSWERED_TTL_MS ? a.hostId : undefined;
    });
    return known && { hash: known.hash, hostId: known.value };
  };

  /**
   * Requests this process sent to a host's first attempt and not yet settled, by request id: a
   * burst is placed before any host has reported its share, so a host's load is taken as at
   * least what this process has in flight there.
   */
  const placed = new Map<string, { hostId: string; build: string; at: number }>();
  const inFlight = () => {
    const n = new Map<string, Map<string, number>>();
    for (const p of placed.values()) {
      const byBuild = n.get(p.hostId) ?? new Map<string, number>();
      byBuild.set(p.build, (byBuild.get(p.build) ?? 0) + 1);
      n.set(p.hostId, byBuild);
    }
    return n;
  };

  const unlisten = await o.db.listen(FLEET_CHANGES_CHANNEL, onChange);
  const fullTimer = setInterval(() => {
    fullDue = true;
    void pump();
    const now = Date.now();
    for (const [id, p] of placed) if (now - p.at > PLACED_TTL_MS) placed.delete(id);
  }, FULL_REFRESH_MS).unref();
  await pump();

  return {
    preRoute({ alias, requestId, stream, prefix }) {
      const now = Date.now();
      if (!snap || notified !== read || now - fullAt > MAX_AGE_MS) return undefined;
      const { view, consistent } = routeViewFor(snap, alias, o.config);
      if (!consistent) return undefined;
      const build = view.fleet.model?.id;
      const noted = prefix && build ? recall(prefix.blocks, now) : undefined;
      if (placed.size > 0 || (noted && build)) {
        const facts = { ...(placed.size > 0 ? { inFlight: inFlight() } : {}), ...(noted && build ? { answered: { ...noted, build } } : {}) };
        view.fleet = { ...view.fleet, hosts: withLocalFacts(view.fleet.hosts, facts) };
      }
      const decision = planRequest(view, { now, requestId, stream, exclude: [], joinLoads: true, ...(prefix ? { prefix } : {}) });
      return decision.kind === 'serve' ? decision : undefined;
    },
    answered({ hostId, blocks }) {
      const last = blocks.at(-1);
      if (last === undefined) return;
      setRecent(answered, last, { hostId, at: Date.now() }, MAX_ANSWERED);
    },
    dispatched(requestId, decision) {
      const first = decision.attempts[0];
      if (first?.replica.kind === 'host') placed.set(requestId, { hostId: first.replica.hostId, build: first.target.build, at: Date.now() });
    },
    settled(requestId) {
      placed.delete(requestId);
    },
    async close() {
      closed = true;
      clearInterval(fullTimer);
      clearTimeout(retryTimer);
      await unlisten().catch(() => undefined);
    },
  };
}
