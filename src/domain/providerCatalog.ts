/**
 * Which remote builds exist after a provider refresh: merge versus prune. A refresh lists each
 * provider's `/v1/models`; the outcome depends on how much of the fleet answered:
 * - a PARTIAL batch (some provider failed, or an admin change to one provider) only merges:
 *   new and mapped models are added, nothing unrelated is rebuilt, nothing is removed;
 * - a COMPLETE refresh (every enabled provider answered) also prunes: a discovered model its
 *   provider no longer lists is removed — and an empty answer is a complete empty set, not an
 *   error. A mapped model (the operator's own list) is never pruned by a listing: many upstreams
 *   list less than they serve; it goes when the operator removes it;
 * - a provider's mapped models (its canonical=slug list) are active; a model seen only in a
 *   listing is added inactive (canonical id = its slug) until an operator activates it;
 * - a mapped model the operator removed from the list goes at once (it is that provider's own
 *   configuration, not an unrelated model);
 * - an alias (canonical id) left with no build is removed — its requests get 404, it is not
 *   kept reserved; one whose build went is repointed to another build serving the same id.
 * Pure: the repository applies the plan in one transaction.
 */
import type { CanonicalEntry } from './canonicalIds.js';

export interface RemoteBuild {
  id: string;
  providerId: string;
  upstreamModel: string;
  canonicalId: string;
  active: boolean;
  origin: 'mapped' | 'discovered';
  contextLength: number;
}

export interface ProviderCatalogSpec {
  providerId: string;
  mapping: readonly CanonicalEntry[];
  /** Context length assumed when the listing does not give one. */
  contextLength: number;
}

export type Listing =
  | { providerId: string; ok: true; models: ReadonlyArray<{ slug: string; contextLength?: number }> }
  | { providerId: string; ok: false; reason: string };

export interface AliasRef {
  id: string;
  desired: string;
  previous: string | null;
}

export interface RefreshPlan {
  upsert: RemoteBuild[];
  remove: string[];
  aliases: {
    create: Array<{ id: string; desired: string }>;
    repoint: Array<{ id: string; desired: string; previous: string | null }>;
    remove: string[];
  };
}

/** A remote build's id: unique per (provider, slug), and readable in logs and the catalog. */
export const remoteBuildId = (providerId: string, slug: string): string => `${providerId}/${slug}`;

export interface RefreshInput {
  current: readonly RemoteBuild[];
  /** Every configured provider (enabled or not), in configured order. */
  providers: readonly ProviderCatalogSpec[];
  /** Answers of the providers this refresh asked (absent: not asked this time). */
  listings: readonly Listing[];
  /** Every enabled provider was asked and answered: prune what they no longer list. */
  complete: boolean;
  aliases: readonly AliasRef[];
  /** Builds of other kinds (GGUF): aliases pointing at them are never repointed or removed here. */
  otherBuilds: ReadonlySet<string>;
}

export function planRefresh(input: RefreshInput): RefreshPlan {
  const byId = new Map(input.current.map((b) => [b.id, b]));
  const next = new Map<string, RemoteBuild>();
  const known = new Set(input.providers.map((p) => p.providerId));
  const listingOf = new Map(input.listings.map((l) => [l.providerId, l]));

  for (const b of input.current) if (known.has(b.providerId)) next.set(b.id, b);
  for (const p of input.providers) {
    const listing = listingOf.get(p.providerId);
    const listed = listing?.ok ? new Map(listing.models.map((m) => [m.slug, m])) : undefined;
    const mappedSlugs = new Set(p.mapping.map((e) => e.slug));
    // An operator's own change: mapped rows that left the list go now.
    for (const b of [...next.values()]) {
      if (b.providerId === p.providerId && b.origin === 'mapped' && !p.mapping.some((e) => e.slug === b.upstreamModel && e.canonical === b.canonicalId)) {
        next.delete(b.id);
      }
    }
    for (const e of p.mapping) {
      const id = remoteBuildId(p.providerId, e.slug);
      const ctx = listed?.get(e.slug)?.contextLength ?? byId.get(id)?.contextLength ?? p.contextLength;
      next.set(id, { id, providerId: p.providerId, upstreamModel: e.slug, canonicalId: e.canonical, active: true, origin: 'mapped', contextLength: ctx });
    }
    if (!listed) continue;
    for (const m of listed.values()) {
      if (mappedSlugs.has(m.slug)) continue;
      const id = remoteBuildId(p.providerId, m.slug);
      const old = next.get(id);
      next.set(id, {
        id,
        providerId: p.providerId,
        upstreamModel: m.slug,
        canonicalId: old?.canonicalId ?? m.slug,
        active: old?.active ?? false,
        origin: 'discovered',
        contextLength: m.contextLength ?? old?.contextLength ?? p.contextLength,
      });
    }
    if (input.complete) {
      for (const b of [...next.values()]) if (b.providerId === p.providerId && b.origin === 'discovered' && !listed.has(b.upstreamModel)) next.delete(b.id);
    }
  }

  const remove = input.current.map((b) => b.id).filter((id) => !next.has(id));
  const upsert = [...next.values()].filter((b) => !same(byId.get(b.id), b));
  return { upsert, remove, aliases: planAliases(input, next) };
}

function same(a: RemoteBuild | undefined, b: RemoteBuild): boolean {
  return !!a && a.canonicalId === b.canonicalId && a.active === b.active && a.origin === b.origin && a.contextLength === b.contextLength && a.upstreamModel === b.upstreamModel;
}

function planAliases(input: RefreshInput, builds: ReadonlyMap<string, RemoteBuild>): RefreshPlan['aliases'] {
  const exists = (id: string | null) => id !== null && (builds.has(id) || input.otherBuilds.has(id));
  const activeFor = (canonical: string) => [...builds.values()].find((b) => b.active && b.canonicalId === canonical)?.id;
  const out: RefreshPlan['aliases'] = { create: [], repoint: [], remove: [] };
  const aliasIds = new Set(input.aliases.map((a) => a.id));
  for (const a of input.aliases) {
    const desiredOk = exists(a.desired);
    const previousOk = a.previous === null || exists(a.previous);
    if (desiredOk && previousOk) continue;
    if (desiredOk) {
      out.repoint.push({ id: a.id, desired: a.desired, previous: null });
      continue;
    }
    const replacement = (previousOk && a.previous) || activeFor(a.id);
    if (replacement) out.repoint.push({ id: a.id, desired: replacement, previous: null });
    else out.remove.push(a.id);
  }
  const created = new Set<string>();
  for (const b of builds.values()) {
    if (!b.active || aliasIds.has(b.canonicalId) || created.has(b.canonicalId)) continue;
    created.add(b.canonicalId);
    out.create.push({ id: b.canonicalId, desired: b.id });
  }
  return out;
}

/** What decides whether a provider (or one of its models) can be called at all. */
export interface ProviderUsability {
  enabled: boolean;
  /** The environment variable holding its key (null: it takes none). */
  apiKeyEnv: string | null;
  keySet: boolean;
  /** The model is active at this provider (omit when asking about the provider itself). */
  modelActive?: boolean;
}

/** Null when usable; otherwise why not — the one wording routing, the worker and the admin API use. */
export function providerUnusable(u: ProviderUsability): string | null {
  if (!u.enabled) return 'the provider is disabled';
  if (u.modelActive === false) return 'the model is not active at this provider';
  if (u.apiKeyEnv && !u.keySet) return `its key (${u.apiKeyEnv}) is not set`;
  return null;
}
