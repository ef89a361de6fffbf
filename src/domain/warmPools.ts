/**
 * The warm-pool planner's policy: which loads and moves keep `min_warm` hosts per alias
 * loaded with its desired build, and which host a rollout upgrades next. Pure: the
 * `warmPools` workflow reads the fleet through a local activity, calls this, runs the
 * actions, and plans again until there is nothing left to do.
 *
 * - Only hosts of the alias's pool are loaded (all hosts with enforcement off, and then only
 *   into a free slot, so aliases cannot evict each other back and forth).
 * - Rollout: while a pool host still serves the previous build, one host at a time loads the
 *   desired build — an empty one first, else in place of an idle previous build, and only
 *   while another host of the pool keeps serving, so the alias never goes dark.
 * - Short of `min_warm` with no pool host left to load: move idle hosts from other pools
 *   (never below a donor's own `min_warm`, never a host still in its cool-down).
 * - A host gets at most one action per plan.
 */
import type { CatalogModelView, HostView } from './fleetView.js';
import { isHostHealthy } from './health.js';
import { canEverHost, planLoadOnHost } from './placement.js';
import { isDraining, movableHosts, servableBuilds, type PoolsView } from './pools.js';

export interface PlannerState {
  hosts: HostView[];
  pools: PoolsView;
  /** Every catalog build by id. */
  builds: Record<string, CatalogModelView>;
  heartbeatIntervalMs: number;
}

export type PlanAction =
  | { kind: 'load'; hostId: string; alias: string; build: string; why: 'rollout' | 'min_warm' }
  | { kind: 'move'; hostId: string; alias: string; why: 'min_warm' };

const byName = (a: HostView, b: HostView) => a.id.localeCompare(b.id);
const active = (h: HostView) => h.placements.filter((p) => p.state === 'loaded' || p.state === 'loading').length;

export interface PlanOptions {
  /**
   * Hosts to leave alone (their actions kept failing in this run): never chosen, but still
   * counted as serving, so the next host of a rollout is offered instead of waiting on them.
   */
  skip?: readonly string[];
}

export function planWarmPools(state: PlannerState, now: number, o: PlanOptions = {}): PlanAction[] {
  const { pools, builds } = state;
  const actions: PlanAction[] = [];
  const used = new Set<string>();
  const skip = new Set(o.skip ?? []);
  const healthy = state.hosts.filter((h) => isHostHealthy(h, now, state.heartbeatIntervalMs));

  for (const alias of [...pools.aliases].sort((a, b) => a.id.localeCompare(b.id))) {
    const desired = builds[alias.desired];
    if (!desired) continue;
    const previous = alias.previous ? builds[alias.previous] : undefined;
    const pins = new Set(desired.verifiable ? (desired.pinnedFingerprints ?? []) : []);
    const pinned = (h: HostView) => !desired.verifiable || (h.keyFingerprint !== undefined && pins.has(h.keyFingerprint));
    const stateOf = (h: HostView, build: string | undefined) =>
      build ? h.placements.find((p) => p.modelId === build)?.state : undefined;
    const pool = healthy
      .filter((h) => servableBuilds(pools, h.id, alias).includes(desired.id) && pinned(h) && canEverHost(h, desired))
      .sort(byName);
    const warm = (h: HostView) => ['loaded', 'loading'].includes(stateOf(h, desired.id) ?? '');
    // Serving now, and not about to unload for an action of this plan.
    const serving = (h: HostView) =>
      !used.has(h.id) && (stateOf(h, desired.id) === 'loaded' || stateOf(h, previous?.id) === 'loaded');
    // A desired load already running is a rollout step in flight: nothing else may unload
    // the previous build until it finishes (and at most one host per plan may).
    let evicting = pool.some((h) => stateOf(h, desired.id) === 'loading');
    const evictsPrevious = (h: HostView) => previous !== undefined && (planLoadOnHost(h, desired.id)?.evict.includes(previous.id) ?? false);
    // Loading here must not leave the alias with nobody serving it.
    const loadable = (h: HostView) => {
      if (used.has(h.id) || skip.has(h.id) || warm(h)) return false;
      const plan = planLoadOnHost(h, desired.id);
      if (!plan) return false;
      if (!pools.enabled && plan.evict.length > 0) return false;
      if (!evictsPrevious(h)) return true;
      return !evicting && pool.some((o) => o.id !== h.id && serving(o));
    };
    let warmCount = pool.filter(warm).length;
    const take = (h: HostView, why: 'rollout' | 'min_warm') => {
      if (evictsPrevious(h)) evicting = true;
      used.add(h.id);
      warmCount++;
      actions.push({ kind: 'load', hostId: h.id, alias: alias.id, build: desired.id, why });
    };

    // Rollout, one host at a time (none while a desired load runs): a host with room first,
    // then one whose previous build is idle (planLoadOnHost never evicts a busy model).
    if (previous && !pool.some((h) => stateOf(h, desired.id) === 'loading')) {
      const next = pool
        .filter(loadable)
        .filter((h) => stateOf(h, previous.id) === 'loaded' || pool.some((o) => stateOf(o, previous.id) === 'loaded'))
        .sort((a, b) => Number(stateOf(a, previous.id) === 'loaded') - Number(stateOf(b, previous.id) === 'loaded') || byName(a, b))[0];
      if (next) take(next, 'rollout');
    }

    // min_warm from the pool's own hosts: empty ones first. loadable() is asked again for
    // each host, since every take changes who is left serving the previous build.
    for (const h of [...pool].sort((a, b) => active(a) - active(b) || byName(a, b))) {
      if (warmCount >= alias.minWarm) break;
      if (loadable(h)) take(h, 'min_warm');
    }

    // Still short: borrow idle hosts from other pools.
    if (warmCount < alias.minWarm && pools.enabled) {
      const movable = movableHosts(state.hosts, pools, alias, {
        now,
        heartbeatIntervalMs: state.heartbeatIntervalMs,
        cooldownMs: pools.cooldownMs,
        hardCooldown: true,
        exclude: [...used, ...skip],
        leaving: actions.filter((a) => a.kind === 'move').map((a) => a.hostId),
        canServe: (h) => pinned(h) && canEverHost(h, desired),
      });
      for (const hostId of movable.slice(0, alias.minWarm - warmCount)) {
        used.add(hostId);
        actions.push({ kind: 'move', hostId, alias: alias.id, why: 'min_warm' });
      }
    }
  }
  return actions;
}

/**
 * Hosts a rollout waits for, per alias: a healthy pool host that still serves the previous
 * build without the desired one, and whose upgrade leaves another host serving.
 */
function rolloutWaiters(state: PlannerState, now: number, o: PlanOptions = {}): Array<{ alias: string; host: HostView }> {
  const skip = new Set(o.skip ?? []);
  const healthy = state.hosts.filter((h) => isHostHealthy(h, now, state.heartbeatIntervalMs));
  const has = (h: HostView, build: string, states: string[]) => h.placements.some((p) => p.modelId === build && states.includes(p.state));
  return state.pools.aliases
    .filter((a) => a.previous !== null && state.builds[a.desired] !== undefined)
    .flatMap((a) => {
      const pool = healthy.filter((h) => servableBuilds(state.pools, h.id, a).includes(a.desired));
      const serving = (h: HostView) => has(h, a.desired, ['loaded']) || has(h, a.previous!, ['loaded']);
      return pool
        .filter((h) => !skip.has(h.id) && has(h, a.previous!, ['loaded']) && !has(h, a.desired, ['loaded', 'loading']) && pool.some((x) => x.id !== h.id && serving(x)))
        .map((host) => ({ alias: a.id, host }));
    });
}

/**
 * Aliases whose rollout is not finished: a healthy pool host still serves the previous build
 * without the desired one. The planner keeps planning (with a pause) while one is pending,
 * since the host to upgrade next may only be busy for a moment.
 */
export function pendingRollouts(state: PlannerState, now: number, o: PlanOptions = {}): string[] {
  return [...new Set(rolloutWaiters(state, now, o).map((w) => w.alias))];
}

/**
 * The host to drain for the next rollout step when every candidate is busy (under steady load
 * none is ever idle by itself): the least busy one, then by name; none while a host of that
 * alias is draining already or a desired load runs (one step at a time). Routing then sends it
 * nothing while another host of the pool serves, so it empties within one request.
 */
export function drainCandidate(state: PlannerState, now: number, o: PlanOptions = {}): string | null {
  const busy = (h: HostView) => Object.values(h.load).reduce((n, l) => n + l.running + l.queued, 0);
  const stepRunning = (alias: string) =>
    state.hosts.some((h) => {
      const a = state.pools.aliases.find((x) => x.id === alias);
      return (isDraining(state.pools.hostPools[h.id], now) && state.pools.hostPools[h.id]?.alias === alias) || (a && h.placements.some((p) => p.modelId === a.desired && p.state === 'loading'));
    });
  const next = rolloutWaiters(state, now, o)
    .filter((w) => !stepRunning(w.alias))
    .sort((x, y) => busy(x.host) - busy(y.host) || x.host.id.localeCompare(y.host.id))[0];
  return next?.host.id ?? null;
}

/** Whether a planner run would do anything now: an action to take, or a rollout to wait for. */
export function plannerHasWork(state: PlannerState, now: number): boolean {
  return planWarmPools(state, now).length > 0 || pendingRollouts(state, now).length > 0;
}

/**
 * Whether a planned action must wait for its host to be drained first: a rollout step that
 * replaces the previous build on a host serving it. Without the drain, requests keep arriving
 * between the plan (the host looked idle) and the load's eviction, which then refuses — three
 * times, and the run gives the host up, leaving the rollout half done.
 */
export function needsDrain(state: PlannerState, action: PlanAction): boolean {
  if (action.kind !== 'load' || action.why !== 'rollout') return false;
  const alias = state.pools.aliases.find((a) => a.id === action.alias);
  const host = state.hosts.find((h) => h.id === action.hostId);
  if (!alias?.previous || !host) return false;
  // Only a load that evicts the previous build races requests: one into a free slot does not.
  return planLoadOnHost(host, action.build)?.evict.includes(alias.previous) ?? host.placements.some((p) => p.modelId === alias.previous && p.state === 'loaded');
}
