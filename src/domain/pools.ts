/**
 * Model pools: every host serves at most one public model (alias) at a time, so models never
 * compete for one host's memory, KV cache and thermal budget. Pure: the callers pass the
 * fleet's hosts, the aliases and each host's pool, plus `now`; workflows call these
 * functions deterministically on state read through a local activity.
 *
 * - A host "counts for" alias A when its pool's builds and A's builds intersect: a build
 *   shared by several aliases counts for each (it is the same weights in memory).
 * - Seeding: a host without a pool gets the alias of what it is running, else of what it
 *   advertises (its GGUF files); among several candidates, the pool with the fewest hosts,
 *   then a per-host hash (rendezvous), so hosts spread instead of all picking the first.
 * - Enforcement off (`enabled: false`): every host counts for every alias.
 */
import type { FleetView, HostView } from './fleetView.js';
import { isHostHealthy } from './health.js';

export interface AliasView {
  id: string;
  /** Build (catalog model id) clients get now. */
  desired: string;
  /** Build the alias rolls from: served while no desired replica can be. */
  previous: string | null;
  minWarm: number;
}

export type HostPoolState = 'serving' | 'moving' | 'failed';

export interface HostPoolView {
  alias: string | null;
  state: HostPoolState;
  /** ISO time a reassignment last moved the host. */
  movedAt: string | null;
  /** ISO time the planner drained it for a rollout step (refreshed while the step waits); see isDraining. */
  drainingSince?: string;
}

/**
 * A drain older than this is stale (its planner run died or was terminated): routing and the
 * planner ignore it, and the next run clears it. A live run refreshes its drain every second.
 */
export const DRAIN_TTL_MS = 60_000;

export function isDraining(pool: HostPoolView | undefined, now: number): boolean {
  return pool?.drainingSince !== undefined && now - Date.parse(pool.drainingSince) < DRAIN_TTL_MS;
}

export interface PoolsView {
  enabled: boolean;
  /** How long after a move a host is not moved again by the planner (on demand: tried last). */
  cooldownMs: number;
  aliases: AliasView[];
  /** By host id; a host absent here has no pool yet. */
  hostPools: Record<string, HostPoolView>;
}

export const aliasBuilds = (a: AliasView): string[] => (a.previous ? [a.desired, a.previous] : [a.desired]);

function aliasOf(pools: PoolsView, id: string | null | undefined): AliasView | undefined {
  return id ? pools.aliases.find((a) => a.id === id) : undefined;
}

/**
 * The builds of `alias` the host may serve (or load): all of them with enforcement off;
 * none while the host is moving; otherwise those its pool shares with the alias.
 */
export function servableBuilds(pools: PoolsView | undefined, hostId: string, alias: AliasView): string[] {
  const builds = aliasBuilds(alias);
  if (!pools || !pools.enabled) return builds;
  const hp = pools.hostPools[hostId];
  if (!hp || hp.state === 'moving') return [];
  if (hp.alias === alias.id) return builds;
  const own = aliasOf(pools, hp.alias);
  if (!own) return [];
  const shared = new Set(aliasBuilds(own));
  return builds.filter((b) => shared.has(b));
}

export const countsFor = (pools: PoolsView | undefined, hostId: string, alias: AliasView) =>
  servableBuilds(pools, hostId, alias).length > 0;

/** FNV-1a, 32 bit: a stable hash with no I/O and no randomness (workflow-safe). */
export function stableHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export interface SeedInput {
  hostId: string;
  /** Builds the host has loaded now. */
  running: string[];
  /** Builds whose file the host has. */
  advertised: string[];
  aliases: AliasView[];
  /** Hosts already in each pool (by alias id). */
  poolSizes: Record<string, number>;
}

export type SeedDecision = { alias: string; source: 'running' | 'advertised' } | null;

export function seedPool(input: SeedInput): SeedDecision {
  const pick = (builds: string[]): string | undefined => {
    const set = new Set(builds);
    const candidates = input.aliases.filter((a) => aliasBuilds(a).some((b) => set.has(b)));
    candidates.sort(
      (a, b) =>
        (input.poolSizes[a.id] ?? 0) - (input.poolSizes[b.id] ?? 0) ||
        stableHash(`${input.hostId}|${b.id}`) - stableHash(`${input.hostId}|${a.id}`) ||
        a.id.localeCompare(b.id),
    );
    return candidates[0]?.id;
  };
  const running = pick(input.running);
  if (running) return { alias: running, source: 'running' };
  const advertised = pick(input.advertised);
  return advertised ? { alias: advertised, source: 'advertised' } : null;
}

export type ReassignRefusal = 'unknown_host' | 'unhealthy' | 'busy' | 'queued' | 'loading' | 'moving' | 'cooldown';

export interface EligibilityOptions {
  now: number;
  heartbeatIntervalMs: number;
  /** Moves within this long after the host's last move are refused (planner only). */
  cooldownMs?: number;
  /** The reassignment asking: its own `moving` mark is not a reason to refuse. */
  self?: boolean;
}

/** Can the host leave its pool now? Only when idle: nothing running, queued or loading. */
export function reassignRefusal(
  host: HostView | undefined,
  pool: HostPoolView | undefined,
  o: EligibilityOptions,
): ReassignRefusal | null {
  if (!host) return 'unknown_host';
  if (!isHostHealthy(host, o.now, o.heartbeatIntervalMs)) return 'unhealthy';
  const loads = Object.values(host.load);
  if (loads.some((l) => l.running > 0)) return 'busy';
  if (loads.some((l) => l.queued > 0)) return 'queued';
  if (host.placements.some((p) => p.state === 'loading' || p.state === 'unloading')) return 'loading';
  if (pool?.state === 'moving' && !o.self) return 'moving';
  if (o.cooldownMs !== undefined && inCooldown(pool, o.now, o.cooldownMs)) return 'cooldown';
  return null;
}

/** Moved less than `cooldownMs` ago. */
function inCooldown(pool: HostPoolView | undefined, now: number, cooldownMs: number): boolean {
  return pool?.movedAt != null && now - Date.parse(pool.movedAt) < cooldownMs;
}

export const REFUSAL_TEXT: Record<ReassignRefusal, string> = {
  unknown_host: 'the host is not registered',
  unhealthy: 'the host is not healthy',
  busy: 'requests are running on the host',
  queued: 'requests are queued on the host',
  loading: 'a model is loading or unloading on the host',
  moving: 'the host is already being reassigned',
  cooldown: 'the host was moved recently (cool-down)',
};

/** Healthy hosts whose pool is exactly `aliasId` (a donor's own count, for min_warm). */
function poolMembers(hosts: HostView[], pools: PoolsView, aliasId: string, o: { now: number; heartbeatIntervalMs: number }) {
  return hosts.filter(
    (h) => pools.hostPools[h.id]?.alias === aliasId && pools.hostPools[h.id]?.state !== 'moving' && isHostHealthy(h, o.now, o.heartbeatIntervalMs),
  );
}

export interface MovableOptions extends EligibilityOptions {
  cooldownMs: number;
  /** Planner: a host in its cool-down is not movable. On demand: it is only tried last. */
  hardCooldown: boolean;
  exclude?: readonly string[];
  /** Extra capability filter (memory, pinned key). */
  canServe?: (h: HostView) => boolean;
  /** Hosts leaving their pools in the same plan (donors' counts go down by these). */
  leaving?: readonly string[];
}

/**
 * Idle hosts that could move into `alias`'s pool, best first: unassigned hosts, then hosts
 * past their cool-down, then hosts from the largest donor pool, then by name. A donor keeps
 * at least its own `min_warm` hosts. Enforcement off → none (nothing needs moving).
 */
export function movableHosts(hosts: HostView[], pools: PoolsView | undefined, alias: AliasView, o: MovableOptions): string[] {
  if (!pools || !pools.enabled) return [];
  const excluded = new Set([...(o.exclude ?? []), ...(o.leaving ?? [])]);
  const leaving = new Set(o.leaving ?? []);
  return hosts
    .filter((h) => !excluded.has(h.id) && !countsFor(pools, h.id, alias))
    .filter((h) => reassignRefusal(h, pools.hostPools[h.id], { ...o, cooldownMs: o.hardCooldown ? o.cooldownMs : undefined }) === null)
    .filter((h) => (o.canServe ? o.canServe(h) : true))
    .flatMap((h) => {
      const donor = aliasOf(pools, pools.hostPools[h.id]?.alias);
      const members = donor ? poolMembers(hosts, pools, donor.id, o) : [];
      // The donor keeps its own min_warm, counting hosts already leaving in the same plan.
      if (donor && members.filter((m) => m.id !== h.id && !leaving.has(m.id)).length < donor.minWarm) return [];
      return [{ id: h.id, assigned: donor ? 1 : 0, cooling: inCooldown(pools.hostPools[h.id], o.now, o.cooldownMs) ? 1 : 0, donorSize: -members.length }];
    })
    .sort((a, b) => a.assigned - b.assigned || a.cooling - b.cooling || a.donorSize - b.donorSize || a.id.localeCompare(b.id))
    .map((x) => x.id);
}

/**
 * The alias a view was read for; a view of one build (cold loads, views recorded before
 * aliases) stands for an alias of the same id.
 */
export function viewAlias(view: Pick<FleetView, 'alias' | 'model' | 'previous'>): AliasView | undefined {
  if (view.alias) return view.alias;
  return view.model ? { id: view.model.id, desired: view.model.id, previous: view.previous?.id ?? null, minWarm: 0 } : undefined;
}

/** Hosts that count for the view's alias (all hosts when enforcement is off or absent). */
export function poolHostIds(view: Pick<FleetView, 'alias' | 'model' | 'previous' | 'pools' | 'hosts'>): string[] {
  const alias = viewAlias(view);
  if (!alias) return [];
  return view.hosts.filter((h) => countsFor(view.pools, h.id, alias)).map((h) => h.id);
}

/**
 * The pool an operator's load of `build` moves a host into, when the host's pool does not
 * serve it (`fleet models load <model> --host h`): the alias named, if the build is what it
 * serves now; else the first alias (by id) whose desired build it is. Null: no alias serves
 * the build as desired (a previous-only or unaliased build): nothing to move into.
 */
export function poolForLoad(aliases: readonly AliasView[], o: { requested: string; build: string }): string | null {
  const named = aliases.find((a) => a.id === o.requested && a.desired === o.build);
  if (named) return named.id;
  return [...aliases].sort((a, b) => a.id.localeCompare(b.id)).find((a) => a.desired === o.build)?.id ?? null;
}
