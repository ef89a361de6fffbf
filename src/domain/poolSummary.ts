/**
 * What `GET /admin/pools`, `fleet pools` and the pool gauges show per alias: its hosts, how
 * many serve one of its builds, the load on them and the capacity left. Pure, from the same
 * view routing uses, so the figures agree with routing's idea of a pool (with enforcement
 * off, every host counts for every alias — as routing then sees it).
 */
import type { HostView } from './fleetView.js';
import { isHostHealthy } from './health.js';
import { countsFor, servableBuilds, type PoolsView } from './pools.js';

export interface PoolSummary {
  alias: string;
  desired: string;
  previous: string | null;
  minWarm: number;
  /** Hosts counting for the alias (healthy or not). */
  hosts: string[];
  healthy: number;
  /** Healthy hosts with one of the alias's builds loaded. */
  loaded: number;
  /** Healthy hosts with the desired build loaded. */
  desiredLoaded: number;
  running: number;
  queued: number;
  /** Free slots and queue places on the loaded hosts; null when a host does not report limits. */
  capacityLeft: number | null;
}

export interface PoolsOverview {
  enabled: boolean;
  pools: PoolSummary[];
  /** Healthy or not, hosts in no pool (enforcement on only). */
  unassigned: string[];
  /** Hosts being moved right now. */
  moving: string[];
}

export function summarizePools(hosts: HostView[], pools: PoolsView, now: number, heartbeatIntervalMs: number): PoolsOverview {
  const summaries = pools.aliases.map((alias): PoolSummary => {
    const members = hosts.filter((h) => countsFor(pools, h.id, alias));
    const healthy = members.filter((h) => isHostHealthy(h, now, heartbeatIntervalMs));
    let running = 0;
    let queued = 0;
    let capacityLeft: number | null = 0;
    let loaded = 0;
    let desiredLoaded = 0;
    for (const h of healthy) {
      const builds = servableBuilds(pools, h.id, alias).filter((b) => h.placements.some((p) => p.modelId === b && p.state === 'loaded'));
      if (builds.length === 0) continue;
      loaded++;
      if (builds.includes(alias.desired)) desiredLoaded++;
      for (const b of builds) {
        const l = h.load[b] ?? { running: 0, queued: 0 };
        running += l.running;
        queued += l.queued;
        const { maxInFlight, maxQueue } = h.capacity;
        capacityLeft =
          capacityLeft === null || maxInFlight === undefined || maxQueue === undefined
            ? null
            : capacityLeft + Math.max(0, maxInFlight + maxQueue - l.running - l.queued);
      }
    }
    return {
      alias: alias.id,
      desired: alias.desired,
      previous: alias.previous,
      minWarm: alias.minWarm,
      hosts: members.map((h) => h.id).sort(),
      healthy: healthy.length,
      loaded,
      desiredLoaded,
      running,
      queued,
      capacityLeft,
    };
  });
  const known = new Set(pools.aliases.map((a) => a.id));
  return {
    enabled: pools.enabled,
    pools: summaries,
    unassigned: pools.enabled
      ? hosts.filter((h) => { const hp = pools.hostPools[h.id]; return !hp || (hp.state !== 'moving' && !known.has(hp.alias ?? '')); }).map((h) => h.id).sort()
      : [],
    moving: hosts.filter((h) => pools.hostPools[h.id]?.state === 'moving').map((h) => h.id).sort(),
  };
}
