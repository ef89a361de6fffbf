/**
 * What a route decision is made from, read in one go — every host with its load and pool, every
 * alias, every GGUF build, every remote offer, the replicas' failure counts — and the pure step
 * that narrows it to one alias's RouteView. Two readers share it: the request workflow's route
 * step (a local activity, reading it per round) and the API's fleet snapshot (src/api/
 * fleetSnapshot.ts, reading it when the database says it changed), so both decide from the
 * same view of the same rows.
 */
import type { Kysely } from 'kysely';
import type { CatalogModelView, FleetView } from '../domain/fleetView.js';
import { providerUnusable } from '../domain/providerCatalog.js';
import type { PrefixPolicy } from '../domain/prefixRouting.js';
import type { DemotionPolicy, ReplicaHealth } from '../domain/replicas.js';
import type { RouteView } from '../domain/requestPlan.js';
import { readCatalogViews, readFleetHosts, readHostViews, type FleetHosts } from './fleetStateRepo.js';
import { readReplicaFailures } from './replicaHealthRepo.js';
import type { Database } from './schema.js';

/** A remote build with its provider's facts, in the providers' configured order. */
export interface OfferRow {
  build: string;
  canonicalId: string | null;
  upstreamModel: string | null;
  contextLength: number;
  active: boolean;
  providerId: string;
  tier: 'attested' | 'plaintext';
  streaming: boolean;
  enabled: boolean;
  apiKeyEnv: string | null;
}

export interface RoutingSnapshot extends FleetHosts {
  /** Every GGUF build by id. */
  catalog: Record<string, CatalogModelView>;
  offers: OfferRow[];
  health: Record<string, ReplicaHealth>;
}

/** Configuration a route view carries besides the rows. */
export interface RouteConfig {
  heartbeatIntervalMs: number;
  pools: { enabled: boolean; cooldownMs: number };
  demotion: DemotionPolicy;
  /** Whether a provider's key variable is set decides if it can be used. */
  secrets: { get(name: string): string | undefined };
  /** How hosts weigh prefix reuse against load (absent: the defaults). */
  prefixRouting?: PrefixPolicy;
}

export async function readRoutingSnapshot(db: Kysely<Database>): Promise<RoutingSnapshot> {
  const [{ hosts, pools }, catalog, offers, health] = await Promise.all([readFleetHosts(db), readCatalogViews(db), readOfferRows(db), readReplicaFailures(db)]);
  return { hosts, pools, catalog, offers, health };
}

/** The snapshot with `ids` read again (a load change notified for them): hosts stay sorted by id. */
export async function refreshHosts(db: Kysely<Database>, snapshot: RoutingSnapshot, ids: readonly string[]): Promise<RoutingSnapshot> {
  const fresh = await readHostViews(db, ids);
  const gone = new Set(ids);
  const hosts = [...snapshot.hosts.filter((h) => !gone.has(h.id)), ...fresh.hosts].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const hostPools = { ...snapshot.pools.hostPools };
  for (const id of ids) delete hostPools[id];
  return { ...snapshot, hosts, pools: { ...snapshot.pools, hostPools: { ...hostPools, ...fresh.hostPools } } };
}

async function readOfferRows(db: Kysely<Database>): Promise<OfferRow[]> {
  const rows = await db
    .selectFrom('models as m')
    .innerJoin('providers as p', 'p.id', 'm.provider_id')
    .select(['m.id', 'm.canonical_id', 'm.upstream_model', 'm.context_length', 'm.active', 'p.id as provider_id', 'p.tier', 'p.streaming', 'p.enabled', 'p.api_key_env'])
    .where('m.kind', '=', 'remote')
    .orderBy('p.created_at')
    .orderBy('p.id')
    .orderBy('m.id')
    .execute();
  return rows.map((r) => ({
    build: r.id,
    canonicalId: r.canonical_id,
    upstreamModel: r.upstream_model,
    contextLength: r.context_length,
    active: r.active,
    providerId: r.provider_id,
    tier: r.tier,
    streaming: r.streaming,
    enabled: r.enabled,
    apiKeyEnv: r.api_key_env,
  }));
}

/**
 * One alias's route view. `consistent` is false when the alias names a desired GGUF build the
 * snapshot does not hold (a rollout began between the reads): the route step reads again once,
 * the API's snapshot does not route from it.
 */
export function routeViewFor(s: RoutingSnapshot, aliasId: string, c: RouteConfig): { view: RouteView; consistent: boolean } {
  const alias = s.pools.aliases.find((a) => a.id === aliasId);
  const model = alias ? s.catalog[alias.desired] : undefined;
  const previous = alias?.previous ? s.catalog[alias.previous] : undefined;
  // The desired build is either one of ours or a remote offer; neither: the reads crossed a change.
  const consistent = !alias || model !== undefined || s.offers.some((o) => o.build === alias.desired);
  const fleet: FleetView = {
    model: model ?? null,
    ...(previous ? { previous } : {}),
    ...(alias ? { alias } : {}),
    // An alias nobody defined has no fleet (as the per-alias read always answered).
    hosts: alias ? s.hosts : [],
    pools: { ...s.pools, ...c.pools },
    heartbeatIntervalMs: c.heartbeatIntervalMs,
  };
  // The alias's desired and previous builds when remote, and every active remote build whose
  // canonical id is the alias, in the providers' order.
  const offers = s.offers
    .filter((o) => (o.canonicalId === aliasId && o.active) || o.build === alias?.desired || (alias?.previous != null && o.build === alias.previous))
    .map((o) => ({
      providerId: o.providerId,
      target: { kind: 'remote' as const, build: o.build, upstreamModel: o.upstreamModel ?? o.build, contextLength: o.contextLength },
      tier: o.tier,
      streaming: o.streaming,
      unusable: providerUnusable({ enabled: o.enabled, modelActive: o.active, apiKeyEnv: o.apiKeyEnv, keySet: !!o.apiKeyEnv && c.secrets.get(o.apiKeyEnv) !== undefined }),
    }));
  return { view: { fleet, offers, health: s.health, demotion: c.demotion, ...(c.prefixRouting ? { prefixPolicy: c.prefixRouting } : {}) }, consistent };
}
