/**
 * Which hosts a discovery cycle attests for a build: the healthy hosts that hold it loaded,
 * and — so the first pin, or a new host, needs no manual load — the healthy hosts that could
 * load it: its pool serves the build (any host, with pools off) and the file is on the host.
 * Such a host attests the hash of the file it would load; once pinned, the planner or a
 * request loads the build there (cold loads of a verifiable build go to pinned hosts only).
 */
import type { FleetView } from './fleetView.js';
import { isHostHealthy } from './health.js';
import { aliasBuilds, servableBuilds } from './pools.js';

export function attestableHosts(view: FleetView, o: { buildId: string; path: string; now: number }): string[] {
  const { pools } = view;
  const aliases = pools?.aliases.filter((a) => aliasBuilds(a).includes(o.buildId)) ?? [];
  const poolServes = (hostId: string) => !pools || !pools.enabled || aliases.some((a) => servableBuilds(pools, hostId, a).includes(o.buildId));
  return view.hosts
    .filter((h) => isHostHealthy({ status: h.status, lastHeartbeatAt: h.lastHeartbeatAt }, o.now, view.heartbeatIntervalMs))
    .filter((h) => h.placements.some((p) => p.modelId === o.buildId && p.state === 'loaded') || (poolServes(h.id) && h.files.includes(o.path)))
    .map((h) => h.id)
    .sort();
}
