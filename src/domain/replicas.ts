/**
 * Replica ordering: which replicas may serve a request and in which order. Own hosts come
 * first, attested providers next, plaintext providers last — and a model with any attested
 * replica (its own fleet serves it verifiably, or an attested provider offers it) never uses a
 * plaintext one: it fails closed instead of downgrading. Pure; the route step calls it and
 * records only the outcome (the ranked replicas and why the others were left out).
 *
 * - Order: by (effective tier, then the order each source gives: least busy for hosts, the
 *   configured order for providers); a replica that failed `demotion.after` times in a row sorts
 *   after the next tier (own → after attested, …) until it succeeds again.
 * - Rotation happens only inside the leading group of providers (same effective tier as the
 *   head), so load spreads over equivalent providers; hosts keep routing's least-busy order.
 * - A provider that cannot be used (disabled, its key or URL missing or wrong) is skipped with
 *   the reason; for a stream, a provider that cannot stream is skipped when one that can is
 *   there, and otherwise serves the stream in one piece.
 */
import type { Attempt, HostTarget, ProviderTier, RemoteTarget, Tier } from '../common/replicas.js';
import { replicaKey } from '../common/replicas.js';

export const TIER_RANK: Record<Tier, number> = { own: 0, attested: 1, plaintext: 2 };
/** How far a demoted replica sinks: behind the next tier, not behind every tier. */
const DEMOTION_PENALTY = 1.5;
/** @default failures in a row before a replica is demoted (FLEET_DEMOTE_AFTER) */
export const DEFAULT_DEMOTE_AFTER = 10;
/** @default how long a demoted replica stays behind before it gets a try (FLEET_DEMOTE_RETRY_S) */
export const DEFAULT_DEMOTE_RETRY_MS = 60_000;

/** A replica's record: failures in a row, and when the last one happened (epoch ms). */
export interface ReplicaHealth {
  consecutiveFailures: number;
  lastFailureAt?: number;
}

export interface DemotionPolicy {
  /** Failures in a row that demote a replica (0: never). */
  after: number;
  /** A demoted replica gets its place back this long after its last failure, for a try. */
  retryAfterMs: number;
}

/**
 * Demoted: failed `after` times in a row, the last time less than `retryAfterMs` ago. After
 * that it is half open — back in its place, so real traffic tries it: a success resets the
 * count, a failure demotes it for another `retryAfterMs`. Without this a demoted replica
 * behind a healthy tier would never be tried, so never succeed, so never come back.
 */
export function isDemoted(h: ReplicaHealth | undefined, policy: DemotionPolicy, now: number): boolean {
  if (!h || policy.after <= 0 || h.consecutiveFailures < policy.after) return false;
  return h.lastFailureAt === undefined || now - h.lastFailureAt < policy.retryAfterMs;
}

export interface HostOffer extends ReplicaHealth {
  hostId: string;
  target: HostTarget;
}

export interface ProviderOffer {
  providerId: string;
  target: RemoteTarget;
  tier: ProviderTier;
  streaming: boolean;
  /** Null when usable; otherwise why not (disabled, its key is not set, its URL is invalid). */
  unusable: string | null;
  consecutiveFailures: number;
  lastFailureAt?: number;
}

export interface RankInput {
  /** In routing's order (least busy first); all of the `own` tier. */
  hosts: readonly HostOffer[];
  /** In configured order. */
  providers: readonly ProviderOffer[];
  /** The own fleet serves this model verifiably (its builds are verifiable). */
  ownAttested: boolean;
  stream: boolean;
  demotion: DemotionPolicy;
  now: number;
  /** Spreads load over the leading provider group (e.g. a hash of the request id). */
  rotation: number;
  /** Replica keys already tried by this request. */
  exclude?: readonly string[];
}

export interface Skipped {
  replica: string;
  why: string;
}

export interface RankOutcome {
  attempts: Attempt[];
  skipped: Skipped[];
  /** The model has an attested replica (own verifiable fleet or an attested provider, usable or not). */
  attested: boolean;
  /** Plaintext providers were left out because the model is attested (it fails closed). */
  refusedPlaintext: boolean;
}

export function rankReplicas(input: RankInput): RankOutcome {
  const excluded = new Set(input.exclude ?? []);
  const skipped: Skipped[] = [];
  const attested = input.ownAttested || input.providers.some((p) => p.tier === 'attested');
  let refusedPlaintext = false;
  const providers = input.providers.filter((p) => {
    const key = replicaKey({ kind: 'provider', providerId: p.providerId });
    if (excluded.has(key)) return false;
    if (p.unusable !== null) return (skipped.push({ replica: key, why: p.unusable }), false);
    if (attested && p.tier === 'plaintext') {
      refusedPlaintext = true;
      return (skipped.push({ replica: key, why: 'plaintext provider: the model is attested and never downgrades' }), false);
    }
    return true;
  });
  const streamers = input.stream ? providers.filter((p) => p.streaming) : providers;
  const usable = input.stream && streamers.length > 0 ? streamers : providers;
  for (const p of providers) {
    if (!usable.includes(p)) skipped.push({ replica: replicaKey({ kind: 'provider', providerId: p.providerId }), why: 'cannot stream, and another provider can' });
  }

  const demoted = (h: ReplicaHealth) => isDemoted(h, input.demotion, input.now);
  type Entry = { attempt: Attempt; rank: number; order: number; provider: boolean };
  const entries: Entry[] = [];
  input.hosts.forEach((h, i) => {
    if (excluded.has(replicaKey({ kind: 'host', hostId: h.hostId }))) return;
    const d = demoted(h);
    entries.push({
      attempt: { replica: { kind: 'host', hostId: h.hostId }, target: h.target, tier: 'own', consecutiveFailures: h.consecutiveFailures, demoted: d },
      rank: TIER_RANK.own + (d ? DEMOTION_PENALTY : 0),
      order: i,
      provider: false,
    });
  });
  usable.forEach((p, i) => {
    const d = demoted(p);
    entries.push({
      attempt: { replica: { kind: 'provider', providerId: p.providerId }, target: p.target, tier: p.tier, consecutiveFailures: p.consecutiveFailures, demoted: d },
      rank: TIER_RANK[p.tier] + (d ? DEMOTION_PENALTY : 0),
      order: input.hosts.length + i,
      provider: true,
    });
  });
  entries.sort((a, b) => a.rank - b.rank || a.order - b.order);

  // Round robin inside the leading group, when it is a group of providers.
  const head = entries[0];
  if (head?.provider) {
    const group = entries.findIndex((e) => e.rank !== head.rank);
    const len = group < 0 ? entries.length : group;
    const shift = ((input.rotation % len) + len) % len;
    const leading = entries.splice(0, len);
    entries.unshift(...leading.slice(shift), ...leading.slice(0, shift));
  }
  return { attempts: entries.map((e) => e.attempt), skipped, attested, refusedPlaintext };
}
