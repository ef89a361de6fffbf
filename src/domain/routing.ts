/**
 * Routing policy: which host serves a request, or why none can. Pure and deterministic: the
 * same fleet view and clock give the same answer, so a workflow replays it exactly.
 *
 * - Serve: healthy hosts with the model loaded, least busy (running + queued) first, ties by
 *   host name — unless one holds a prefix of the conversation and is not markedly busier
 *   (src/domain/prefixRouting.ts).
 * - Cold load: no loaded replica → the placement policy's choice among healthy hosts.
 * - Join a load: a host of the pool is loading the build → the request waits for that load
 *   (`coldLoad` on that host attaches to it) instead of a 503, so losing the only loaded host
 *   beside an idle one is transparent (the request workflow always asks for this).
 *   `joinLoads: false` answers `wait: loading` instead: what a caller that cannot wait gets.
 * - Wait (503 + Retry-After): every replica refused, only unhealthy hosts could serve it, or no
 *   capable host has a free slot right now.
 * - Verifiable model: only hosts whose current key fingerprint is in the pin set are offered
 *   or cold-loaded; none healthy and pinned → wait `no_pinned_host` (fail closed).
 * - Pools (enforced unless the kill switch is off): only hosts of the alias's pool are offered
 *   or cold-loaded; the desired build first, then the previous build's hosts. A pool with no
 *   capacity left borrows an idle host from another pool (`movePool`), else `pool_exhausted`.
 * - Quarantined build (a load of it failed for its own sake): never cold-loaded nor moved in;
 *   the previous build serves (or is loaded) instead, else wait `quarantined`.
 * - Not found (404): the model is not in the catalog, no host is registered, or no
 *   registered host could ever hold it.
 */
import type { FleetView, HostView } from './fleetView.js';
import { isHostHealthy } from './health.js';
import { canEverHost, chooseLoadTarget } from './placement.js';
import { DEFAULT_PREFIX_POLICY, rankReplicas, type PrefixPolicy, type RequestPrefix } from './prefixRouting.js';
import { countsFor, isDraining, movableHosts, servableBuilds, viewAlias, type PoolsView } from './pools.js';

export type WaitReason = 'no_hosts' | 'loading' | 'no_healthy_host' | 'no_pinned_host' | 'all_tried' | 'no_free_slot' | 'pool_exhausted' | 'pool_cooling' | 'quarantined';

export type RouteDecision =
  /** `candidates` serve the desired build; `fallback` hosts the previous one (tried after). */
  | { kind: 'serve'; candidates: string[]; fallback?: string[] }
  /** Load `build` on the host: the desired build, or the previous one while the desired is quarantined. */
  | { kind: 'coldLoad'; hostId: string; build: string }
  /** Move an idle host from another pool into this alias's pool (then route again). */
  | { kind: 'movePool'; hostId: string }
  | { kind: 'wait'; reason: WaitReason; retryAfterSeconds: number }
  | { kind: 'notFound'; reason: 'unknown_model' | 'no_capable_host' };

export interface RouteOptions {
  now: number;
  /** The request's conversation as block hashes (and session key): the replicas' order weighs prefix reuse. */
  prefix?: RequestPrefix;
  /** @default DEFAULT_PREFIX_POLICY */
  prefixPolicy?: PrefixPolicy;
  /** Hosts already tried for this request (they refused or failed): never chosen again. */
  exclude?: readonly string[];
  /** Wait for a load under way in the pool (see the header). @default false */
  joinLoads?: boolean;
}

/** Seconds a client should wait when a model is loading or hosts are unhealthy. */
export const RETRY_AFTER_LOADING_S = 2;
export const RETRY_AFTER_UNHEALTHY_S = 5;
export const RETRY_AFTER_BUSY_S = 1;

const busy = (h: HostView, modelId: string) => {
  const l = h.load[modelId];
  return l ? l.running + l.queued : 0;
};

const byName = (a: HostView, b: HostView) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * A replica whose last report shows every slot and every queue place taken would refuse at
 * once: offering it only costs a round trip, and a burst would pay it on every host.
 */
export function isSaturated(h: HostView, modelId: string): boolean {
  const l = h.load[modelId];
  const { maxInFlight, maxQueue } = h.capacity;
  if (!l || maxInFlight === undefined || maxQueue === undefined) return false;
  return l.running >= maxInFlight && l.queued >= maxQueue;
}

export function routeRequest(view: FleetView, opts: RouteOptions): RouteDecision {
  const model = view.model;
  if (!model) return { kind: 'notFound', reason: 'unknown_model' };
  // No host registered yet (an API that started before its workers): transient, not a 404
  // that clients would treat as permanent.
  if (view.hosts.length === 0) return { kind: 'wait', reason: 'no_hosts', retryAfterSeconds: RETRY_AFTER_UNHEALTHY_S };
  const previous = view.previous;
  const alias = viewAlias(view)!;
  const pools = view.pools;
  const enforced = pools?.enabled === true;

  const excluded = new Set(opts.exclude ?? []);
  const healthyAll = view.hosts.filter((h) => isHostHealthy(h, opts.now, view.heartbeatIntervalMs));
  // Fail closed: an unpinned (or unreported) key never serves a verifiable model.
  const pins = new Set(model.verifiable ? (model.pinnedFingerprints ?? []) : []);
  const pinned = (h: HostView) => !model.verifiable || (h.keyFingerprint !== undefined && pins.has(h.keyFingerprint));
  const healthy = healthyAll.filter(pinned);
  // The alias's pool: hosts whose pool serves one of its builds (every host when not enforced).
  const pool = healthy.filter((h) => countsFor(pools, h.id, alias));
  const stateOn = (h: HostView, build: string) =>
    servableBuilds(pools, h.id, alias).includes(build) ? h.placements.find((p) => p.modelId === build)?.state : undefined;
  // A host the planner drains for a rollout step gets no new request while another host of
  // the pool serves the alias (even a full one: its 429 is the step's cost, a request racing
  // the drain would make the step fail); with no other host left, it serves as before.
  const draining = (h: HostView) => isDraining(pools?.hostPools[h.id], opts.now);
  const servesAlias = (h: HostView) => stateOn(h, model.id) === 'loaded' || (previous !== undefined && stateOn(h, previous.id) === 'loaded');
  const skipDraining = pool.some((h) => !draining(h) && !excluded.has(h.id) && servesAlias(h));
  const ready = (build: string) =>
    rankReplicas(
      pool
        .filter((h) => stateOn(h, build) === 'loaded' && !excluded.has(h.id) && !isSaturated(h, build) && !(skipDraining && draining(h)))
        .map((h) => ({ id: h.id, busy: busy(h, build), held: h.load[build]?.prefixes, live: h.load[build]?.liveSequences, sequences: h.capacity.maxInFlight })),
      opts.prefix,
      opts.prefixPolicy ?? DEFAULT_PREFIX_POLICY,
    );

  const candidates = ready(model.id);
  const fallback = previous ? ready(previous.id).filter((id) => !candidates.includes(id)) : [];
  if (candidates.length + fallback.length > 0) {
    return { kind: 'serve', candidates, ...(fallback.length > 0 ? { fallback } : {}) };
  }

  const builds = previous ? [model.id, previous.id] : [model.id];
  // What a cold load may bring up: never a quarantined build.
  const loadable = !model.quarantined ? model : previous && !previous.quarantined ? previous : undefined;
  const moveOr = (d: RouteDecision): RouteDecision => {
    // A move loads the desired build: not while it is quarantined.
    if (!enforced || model.quarantined) return d;
    const movable = (hardCooldown: boolean) =>
      movableHosts(view.hosts, pools, alias, {
        now: opts.now,
        heartbeatIntervalMs: view.heartbeatIntervalMs,
        cooldownMs: pools.cooldownMs,
        hardCooldown,
        exclude: opts.exclude,
        canServe: (h) => pinned(h) && canEverHost(h, model),
      });
    const free = movable(true);
    if (free[0]) return { kind: 'movePool', hostId: free[0] };
    // The cool-down binds requests as it binds the planner: one host and two aliases taking
    // turns would otherwise move (unload, reload) on every request. Retry when it ends.
    const cooling = movable(false);
    if (cooling.length > 0) return { kind: 'wait', reason: 'pool_cooling', retryAfterSeconds: cooldownLeftSeconds(pools, cooling, opts.now) };
    return d;
  };
  const exhausted: RouteDecision = { kind: 'wait', reason: 'pool_exhausted', retryAfterSeconds: RETRY_AFTER_BUSY_S };

  // Every ready replica refused this request already, or is full and would: that is load,
  // answered at once (Retry-After), and not a reason to load more copies in the pool —
  // though an idle host from another pool may be moved in.
  if (pool.some((h) => builds.some((b) => stateOn(h, b) === 'loaded'))) {
    const busyWait: RouteDecision = enforced ? exhausted : { kind: 'wait', reason: 'all_tried', retryAfterSeconds: RETRY_AFTER_BUSY_S };
    // Full only because a drained host is held back: a rollout step's brief cost, never a
    // reason to pull a host out of another pool.
    const drainHeldBack = skipDraining && pool.some((h) => draining(h) && !excluded.has(h.id) && servesAlias(h));
    return drainHeldBack ? busyWait : moveOr(busyWait);
  }
  const loading = pool.filter((h) => builds.some((b) => stateOn(h, b) === 'loading')).sort(byName);
  if (loading.length > 0) {
    const join = opts.joinLoads ? loading.find((h) => !excluded.has(h.id)) : undefined;
    const build = join && builds.find((b) => stateOn(join, b) === 'loading');
    if (join && build) return { kind: 'coldLoad', hostId: join.id, build };
    return { kind: 'wait', reason: 'loading', retryAfterSeconds: RETRY_AFTER_LOADING_S };
  }
  if (!loadable) return { kind: 'wait', reason: 'quarantined', retryAfterSeconds: RETRY_AFTER_UNHEALTHY_S };
  const placement = chooseLoadTarget(
    loadable,
    view.hosts,
    pool.filter((h) => !excluded.has(h.id) && servableBuilds(pools, h.id, alias).includes(loadable.id)),
  );
  if (placement.kind === 'never') return { kind: 'notFound', reason: 'no_capable_host' };
  if (placement.kind === 'load') return { kind: 'coldLoad', hostId: placement.plan.hostId, build: loadable.id };

  const inPool = (h: HostView) => countsFor(pools, h.id, alias);
  const unhealthyPool = view.hosts.some(inPool) && pool.length === 0;
  if (healthy.length === 0 || unhealthyPool) {
    // Healthy hosts that could serve but hold no pinned key: say so, not "unhealthy".
    const unpinned = unhealthyPool ? healthyAll.some(inPool) : healthyAll.length > 0;
    const wait: RouteDecision =
      model.verifiable && unpinned
        ? { kind: 'wait', reason: 'no_pinned_host', retryAfterSeconds: RETRY_AFTER_UNHEALTHY_S }
        : { kind: 'wait', reason: 'no_healthy_host', retryAfterSeconds: RETRY_AFTER_UNHEALTHY_S };
    return moveOr(wait);
  }
  if (enforced) return moveOr(exhausted);
  if (excluded.size > 0) return { kind: 'wait', reason: 'all_tried', retryAfterSeconds: RETRY_AFTER_BUSY_S };
  return { kind: 'wait', reason: 'no_free_slot', retryAfterSeconds: RETRY_AFTER_BUSY_S };
}

/** Seconds until the first of `hostIds` leaves its cool-down (at least 1). */
function cooldownLeftSeconds(pools: PoolsView, hostIds: readonly string[], now: number): number {
  const left = hostIds.map((id) => {
    const movedAt = pools.hostPools[id]?.movedAt;
    return movedAt ? Date.parse(movedAt) + pools.cooldownMs - now : 0;
  });
  return Math.max(1, Math.ceil(Math.min(...left) / 1000));
}
