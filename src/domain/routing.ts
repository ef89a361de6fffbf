/**
 * Routing policy: which host serves a request, or why none can. Pure and deterministic: the
 * same fleet view and clock give the same answer, so a workflow replays it exactly.
 *
 * - Serve: healthy hosts with the model loaded, least busy (running + queued) first, ties by
 *   host name.
 * - Cold load: no loaded replica → the placement policy's choice among healthy hosts.
 * - Wait (503 + Retry-After): the model is loading somewhere, every replica refused, only
 *   unhealthy hosts could serve it, or no capable host has a free slot right now.
 * - Verifiable model: only hosts whose current key fingerprint is in the pin set are offered
 *   or cold-loaded; none healthy and pinned → wait `no_pinned_host` (fail closed).
 * - Not found (404): the model is not in the catalog, no host is registered, or no
 *   registered host could ever hold it.
 */
import type { FleetView, HostView } from './fleetView.js';
import { isHostHealthy } from './health.js';
import { chooseLoadTarget } from './placement.js';

export type RouteDecision =
  | { kind: 'serve'; candidates: string[] }
  | { kind: 'coldLoad'; hostId: string }
  | { kind: 'wait'; reason: 'loading' | 'no_healthy_host' | 'no_pinned_host' | 'all_tried' | 'no_free_slot'; retryAfterSeconds: number }
  | { kind: 'notFound'; reason: 'unknown_model' | 'no_hosts' | 'no_capable_host' };

export interface RouteOptions {
  now: number;
  /** Hosts already tried for this request (they refused or failed): never chosen again. */
  exclude?: readonly string[];
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
  if (view.hosts.length === 0) return { kind: 'notFound', reason: 'no_hosts' };

  const excluded = new Set(opts.exclude ?? []);
  const healthyAll = view.hosts.filter((h) => isHostHealthy(h, opts.now, view.heartbeatIntervalMs));
  // Fail closed: an unpinned (or unreported) key never serves a verifiable model.
  const pins = new Set(model.verifiable ? (model.pinnedFingerprints ?? []) : []);
  const healthy = model.verifiable
    ? healthyAll.filter((h) => h.keyFingerprint !== undefined && pins.has(h.keyFingerprint))
    : healthyAll;
  const stateOn = (h: HostView) => h.placements.find((p) => p.modelId === model.id)?.state;

  const loaded = healthy
    .filter((h) => stateOn(h) === 'loaded' && !excluded.has(h.id) && !isSaturated(h, model.id))
    .sort((a, b) => busy(a, model.id) - busy(b, model.id) || byName(a, b));
  if (loaded.length > 0) return { kind: 'serve', candidates: loaded.map((h) => h.id) };

  // Every loaded replica refused this request already, or is full and would: that is load,
  // answered at once with 503 + Retry-After, and not a reason to load more copies.
  if (healthy.some((h) => stateOn(h) === 'loaded')) {
    return { kind: 'wait', reason: 'all_tried', retryAfterSeconds: RETRY_AFTER_BUSY_S };
  }
  if (healthy.some((h) => stateOn(h) === 'loading')) {
    return { kind: 'wait', reason: 'loading', retryAfterSeconds: RETRY_AFTER_LOADING_S };
  }
  const placement = chooseLoadTarget(
    model,
    view.hosts,
    healthy.filter((h) => !excluded.has(h.id)),
  );
  if (placement.kind === 'never') return { kind: 'notFound', reason: 'no_capable_host' };
  if (placement.kind === 'load') return { kind: 'coldLoad', hostId: placement.plan.hostId };
  if (healthy.length === 0) {
    if (model.verifiable && healthyAll.length > 0) {
      return { kind: 'wait', reason: 'no_pinned_host', retryAfterSeconds: RETRY_AFTER_UNHEALTHY_S };
    }
    return { kind: 'wait', reason: 'no_healthy_host', retryAfterSeconds: RETRY_AFTER_UNHEALTHY_S };
  }
  if (excluded.size > 0) return { kind: 'wait', reason: 'all_tried', retryAfterSeconds: RETRY_AFTER_BUSY_S };
  return { kind: 'wait', reason: 'no_free_slot', retryAfterSeconds: RETRY_AFTER_BUSY_S };
}
