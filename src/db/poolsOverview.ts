/** The pools overview (admin endpoint, gauges): fleet state read once, summarized by the domain. */
import type { Kysely } from 'kysely';
import { summarizePools, type PoolsOverview } from '../domain/poolSummary.js';
import { readFleetHosts } from './fleetStateRepo.js';
import type { Database } from './schema.js';

export async function readPoolsOverview(
  db: Kysely<Database>,
  o: { enabled: boolean; cooldownMs: number; heartbeatIntervalMs: number },
): Promise<PoolsOverview> {
  const { hosts, pools } = await readFleetHosts(db);
  return summarizePools(hosts, { ...pools, enabled: o.enabled, cooldownMs: o.cooldownMs }, Date.now(), o.heartbeatIntervalMs);
}
