/**
 * The route step's whole decision for one request, over both kinds of replica: the host policy
 * (src/domain/routing.ts: least busy, pools, pins, cold loads and moves) for the alias's GGUF
 * builds, the provider offers for it, and the ordering rules (src/domain/replicas.ts: tiers,
 * no downgrade, demotion, rotation). Pure. The route local activity reads the view, calls this
 * and records only the outcome — the ranked attempts and why others were left out — so a
 * workflow's history stays small however large the fleet, and a policy change cannot break
 * the replay of a running request.
 *
 * When a provider can serve now, the request is served (own hosts first when one is loaded);
 * a cold load or a pool move happens only when no provider can take the request — the warm
 * pools planner keeps the own fleet warm for the next ones.
 */
import type { Attempt, ProviderTier, RemoteTarget } from '../common/replicas.js';
import { replicaKey } from '../common/replicas.js';
import type { FleetView } from './fleetView.js';
import { poolHostIds, stableHash } from './pools.js';
import { rankReplicas, type DemotionPolicy, type HostOffer, type ProviderOffer, type ReplicaHealth, type Skipped } from './replicas.js';
import { RETRY_AFTER_UNHEALTHY_S, routeRequest, type RouteDecision, type WaitReason } from './routing.js';
import type { PrefixPolicy, RequestPrefix } from './prefixRouting.js';

/** A provider's model for the alias, as the route step read it. */
export interface ProviderOfferView {
  providerId: string;
  target: RemoteTarget;
  tier: ProviderTier;
  streaming: boolean;
  /** Null: usable; otherwise why not (disabled, its key is not set). */
  unusable: string | null;
}

export interface RouteView {
  /** The own fleet for the alias (model null when the alias has no GGUF build). */
  fleet: FleetView;
  offers: ProviderOfferView[];
  /** Failures in a row, and the last one's time, by replica key (absent: none). */
  health: Readonly<Record<string, ReplicaHealth>>;
  demotion: DemotionPolicy;
  /** How our hosts weigh prefix reuse against load (absent: the defaults). */
  prefixPolicy?: PrefixPolicy;
}

export interface RouteOptions {
  now: number;
  requestId: string;
  stream: boolean;
  /** Replica keys (`host:<id>`, `provider:<id>`) this request already tried. */
  exclude: readonly string[];
  joinLoads: boolean;
  /** The request's conversation as block hashes, and its session key. */
  prefix?: RequestPrefix;
}

export type RouteOutcome =
  | { kind: 'serve'; attempts: Attempt[]; skipped: Skipped[] }
  /** Load `build` on the host; a load of it on any of `poolHosts` is joined instead. */
  | { kind: 'coldLoad'; hostId: string; build: string; poolHosts: string[] }
  | { kind: 'movePool'; hostId: string }
  | { kind: 'wait'; reason: PlanWaitReason; retryAfterSeconds: number; quarantine?: { build: string; reason: string } }
  | { kind: 'notFound'; reason: string };

/** Why a request cannot be served now (503/429): the plan's reasons and "the state cannot be read". */
export type PlanWaitReason = WaitReason | 'no_attested_replica' | 'state_unavailable';

/** What the client reads for each wait reason (the envelope's message, before "retry after"). */
export const WAIT_REASON_TEXT: Readonly<Record<PlanWaitReason, string>> = {
  no_hosts: 'no GPU host has registered yet (its workers may still be starting)',
  loading: 'the model is loading',
  no_healthy_host: 'no healthy host can serve the model right now',
  no_pinned_host: 'no host with a pinned (attested) key can serve this verifiable model right now',
  no_attested_replica: 'no attested replica can serve this model right now (it is never served in plaintext)',
  no_free_slot: 'no host has a free slot for the model right now',
  all_tried: 'every replica serving the model is busy',
  pool_exhausted: "the model's pool has no capacity left and no idle host can join it",
  pool_cooling: 'the only hosts that could join the model\'s pool moved between pools recently (FLEET_POOL_COOLDOWN_S keeps pools from thrashing)',
  quarantined: 'the model is quarantined',
  state_unavailable: 'the fleet state cannot be read (the database is not reachable)',
};

export function planRequest(view: RouteView, o: RouteOptions): RouteOutcome {
  const { fleet } = view;
  const excludedHosts = o.exclude.filter((k) => k.startsWith('host:')).map((k) => k.slice('host:'.length));
  const hostDecision: RouteDecision = fleet.model
    ? routeRequest(fleet, { now: o.now, exclude: excludedHosts, joinLoads: o.joinLoads, ...(o.prefix ? { prefix: o.prefix } : {}), ...(view.prefixPolicy ? { prefixPolicy: view.prefixPolicy } : {}) })
    : { kind: 'notFound', reason: 'unknown_model' };

  const health = (key: string): ReplicaHealth => view.health[key] ?? { consecutiveFailures: 0 };
  const hosts: HostOffer[] = [];
  if (hostDecision.kind === 'serve') {
    const add = (ids: readonly string[], build: NonNullable<FleetView['model']>) => {
      for (const hostId of ids) {
        const sign = build.verifiable ? { sign: { modelSha256: build.sha256, pinnedFingerprints: build.pinnedFingerprints ?? [] } } : {};
        hosts.push({ hostId, target: { kind: 'gguf', build: build.id, contextLength: build.contextLength, ...sign }, ...health(`host:${hostId}`) });
      }
    };
    add(hostDecision.candidates, fleet.model!);
    if (fleet.previous) add(hostDecision.fallback ?? [], fleet.previous);
  }
  const providers: ProviderOffer[] = view.offers.map((p) => ({ ...p, ...health(replicaKey({ kind: 'provider', providerId: p.providerId })) }));
  const ranked = rankReplicas({
    hosts,
    providers,
    ownAttested: fleet.model?.verifiable === true || fleet.previous?.verifiable === true,
    stream: o.stream,
    demotion: view.demotion,
    now: o.now,
    rotation: stableHash(o.requestId),
    exclude: o.exclude,
  });
  if (ranked.attempts.length > 0) return { kind: 'serve', attempts: ranked.attempts, skipped: ranked.skipped };

  switch (hostDecision.kind) {
    case 'coldLoad':
      return { kind: 'coldLoad', hostId: hostDecision.hostId, build: hostDecision.build, poolHosts: poolHostIds(fleet) };
    case 'movePool':
      return hostDecision;
    case 'wait':
      // The providers behind the model were tried and failed: that, not the hosts, is the news.
      if (hostDecision.reason === 'no_hosts' && view.offers.length > 0 && o.exclude.some((k) => k.startsWith('provider:'))) {
        return { kind: 'wait', reason: 'all_tried', retryAfterSeconds: 1 };
      }
      return {
        ...hostDecision,
        ...(hostDecision.reason === 'quarantined' && fleet.model?.quarantined ? { quarantine: { build: fleet.model.id, reason: fleet.model.quarantined.reason } } : {}),
      };
    case 'serve':
      // Every host offered was excluded by the ordering (tried): nothing left this round.
      return { kind: 'wait', reason: 'all_tried', retryAfterSeconds: 1 };
    case 'notFound':
      // An attested model whose attested providers cannot serve never falls back to plaintext.
      if (ranked.refusedPlaintext && view.offers.some((p) => p.tier === 'attested' && p.unusable === null)) {
        return { kind: 'wait', reason: 'no_attested_replica', retryAfterSeconds: RETRY_AFTER_UNHEALTHY_S };
      }
      if (ranked.refusedPlaintext) return { kind: 'notFound', reason: 'no_usable_attested_replica' };
      if (view.offers.length > 0 && o.exclude.some((k) => k.startsWith('provider:'))) {
        return { kind: 'wait', reason: 'all_tried', retryAfterSeconds: 1 };
      }
      return { kind: 'notFound', reason: view.offers.length > 0 ? 'no_usable_replica' : hostDecision.reason };
  }
}
