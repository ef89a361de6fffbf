/**
 * Remote providers and their models (remote builds). Providers come from the config file (kept
 * in step with it at every start: the file is the truth for `source = config`) or from the
 * admin API (`source = admin`). A provider's mapped models are written as soon as it is saved
 * (an admin change is a partial batch: it merges, never prunes); `applyRefreshPlan` applies a
 * refresh's merge-or-prune plan (src/domain/providerCatalog.ts) — builds and the aliases that
 * point at them — in one transaction.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import { z } from 'zod';
import { parseCanonicalMap } from '../domain/canonicalIds.js';
import { planRefresh, type AliasRef, type Listing, type ProviderCatalogSpec, type RefreshPlan, type RemoteBuild } from '../domain/providerCatalog.js';
import { timeoutsSchema, transportSchema, type ProviderSpec } from '../providers/providerSpec.js';
import type { Database, ProviderRow } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

export interface ProviderRecord extends Omit<ProviderSpec, 'timeouts'> {
  timeouts: z.output<typeof timeoutsSchema>;
  source: 'config' | 'admin';
  createdAt: string;
  updatedAt: string;
}

const transportOf = (raw: unknown) => {
  const parsed = transportSchema.safeParse(typeof raw === 'string' ? JSON.parse(raw) : (raw ?? {}));
  return parsed.success ? parsed.data : transportSchema.parse({});
};

const timeoutsOf = (raw: unknown) => {
  const parsed = timeoutsSchema.safeParse(typeof raw === 'string' ? JSON.parse(raw) : (raw ?? {}));
  return parsed.success ? parsed.data : timeoutsSchema.parse({});
};

export function toProviderRecord(r: ProviderRow): ProviderRecord {
  return {
    id: r.id,
    base_url: r.base_url,
    tier: r.tier,
    api_key_env: r.api_key_env,
    models: r.models_spec,
    streaming: r.streaming,
    e2ee: r.e2ee,
    enabled: r.enabled,
    context_length: r.context_length,
    timeouts: timeoutsOf(r.timeouts),
    transport: transportOf(r.transport),
    discovery_interval_s: r.discovery_interval_s,
    source: r.source,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  };
}

export async function listProviders(db: Db): Promise<ProviderRecord[]> {
  return (await db.selectFrom('providers').selectAll().orderBy('created_at').orderBy('id').execute()).map(toProviderRecord);
}

export async function getProvider(db: Db, id: string): Promise<ProviderRecord | undefined> {
  const row = await db.selectFrom('providers').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toProviderRecord(row);
}

const rowValues = (p: ProviderSpec) => ({
  base_url: p.base_url,
  tier: p.tier,
  api_key_env: p.api_key_env ?? null,
  models_spec: p.models,
  streaming: p.streaming,
  e2ee: p.e2ee,
  enabled: p.enabled,
  context_length: p.context_length,
  timeouts: JSON.stringify(p.timeouts),
  transport: JSON.stringify(p.transport),
  discovery_interval_s: p.discovery_interval_s,
  updated_at: sql<Date>`now()`,
});

/** Creates or replaces a provider, then merges its mapped models (an admin change: a partial batch). */
export async function saveProvider(db: Kysely<Database>, p: ProviderSpec, source: 'config' | 'admin'): Promise<{ record: ProviderRecord; created: boolean }> {
  return db.transaction().execute(async (tx) => {
    const existed = await tx.selectFrom('providers').select('id').where('id', '=', p.id).forUpdate().executeTakeFirst();
    const row = await tx
      .insertInto('providers')
      .values({ id: p.id, source, ...rowValues(p) })
      .onConflict((oc) => oc.column('id').doUpdateSet({ ...rowValues(p), source }))
      .returningAll()
      .executeTakeFirstOrThrow();
    await mergeRefresh(tx, [], false);
    return { record: toProviderRecord(row), created: !existed };
  });
}

/** Removes a provider; its models go with it (and aliases left with no build). */
export async function deleteProvider(db: Kysely<Database>, id: string): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const gone = await tx.deleteFrom('providers').where('id', '=', id).executeTakeFirst();
    if (Number(gone.numDeletedRows) === 0) return false;
    await mergeRefresh(tx, [], false);
    return true;
  });
}

/**
 * Makes the `config` providers exactly those of the file (added, updated, removed); admin ones
 * are left alone. Returns the ids removed.
 */
export async function syncConfigProviders(db: Kysely<Database>, specs: readonly ProviderSpec[]): Promise<{ saved: string[]; removed: string[] }> {
  for (const p of specs) await saveProvider(db, p, 'config');
  const keep = specs.map((p) => p.id);
  const stale = await db
    .selectFrom('providers')
    .select('id')
    .where('source', '=', 'config')
    .$if(keep.length > 0, (q) => q.where('id', 'not in', keep))
    .execute();
  for (const s of stale) await deleteProvider(db, s.id);
  return { saved: keep, removed: stale.map((s) => s.id) };
}

export async function listRemoteBuilds(db: Db): Promise<RemoteBuild[]> {
  const rows = await db
    .selectFrom('models')
    .select(['id', 'provider_id', 'upstream_model', 'canonical_id', 'active', 'origin', 'context_length'])
    .where('kind', '=', 'remote')
    .orderBy('id')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    providerId: r.provider_id!,
    upstreamModel: r.upstream_model!,
    canonicalId: r.canonical_id!,
    active: r.active,
    origin: r.origin ?? 'mapped',
    contextLength: r.context_length,
  }));
}

/**
 * Plans a refresh from the providers' answers (`listings`; an empty list: no provider asked, as
 * after an admin change) and applies it. `complete`: every enabled provider answered.
 */
export async function mergeRefresh(db: Db, listings: readonly Listing[], complete: boolean): Promise<RefreshPlan> {
  const [providers, current, aliases, other] = await Promise.all([
    db.selectFrom('providers').select(['id', 'models_spec', 'context_length']).orderBy('created_at').orderBy('id').execute(),
    listRemoteBuilds(db),
    db.selectFrom('aliases').select(['id', 'desired_build', 'previous_build']).execute(),
    db.selectFrom('models').select('id').where('kind', '=', 'gguf').execute(),
  ]);
  const specs: ProviderCatalogSpec[] = providers.map((p) => ({ providerId: p.id, mapping: parseCanonicalMap(p.models_spec).entries, contextLength: p.context_length }));
  const plan = planRefresh({
    current,
    providers: specs,
    listings,
    complete,
    aliases: aliases.map((a): AliasRef => ({ id: a.id, desired: a.desired_build, previous: a.previous_build })),
    otherBuilds: new Set(other.map((m) => m.id)),
  });
  await applyRefreshPlan(db, plan);
  return plan;
}

async function applyRefreshPlan(db: Db, plan: RefreshPlan): Promise<void> {
  // Aliases first: a removed build cascades to aliases still pointing at it.
  for (const a of plan.aliases.repoint) {
    await db.updateTable('aliases').set({ desired_build: a.desired, previous_build: a.previous, updated_at: sql<Date>`now()` }).where('id', '=', a.id).execute();
  }
  if (plan.aliases.remove.length) await db.deleteFrom('aliases').where('id', 'in', plan.aliases.remove).execute();
  if (plan.remove.length) await db.deleteFrom('models').where('id', 'in', plan.remove).where('kind', '=', 'remote').execute();
  for (const b of plan.upsert) {
    const values = {
      kind: 'remote' as const,
      provider_id: b.providerId,
      upstream_model: b.upstreamModel,
      canonical_id: b.canonicalId,
      active: b.active,
      origin: b.origin,
      context_length: b.contextLength,
    };
    await db
      .insertInto('models')
      .values({ id: b.id, ...values })
      .onConflict((oc) => oc.column('id').doUpdateSet(values))
      .execute();
  }
  for (const a of plan.aliases.create) {
    await db.insertInto('aliases').values({ id: a.id, desired_build: a.desired }).onConflict((oc) => oc.column('id').doNothing()).execute();
  }
}

/** An operator activates (or deactivates) a remote build; its canonical id gets an alias if it has none. */
export async function setRemoteBuildActive(db: Kysely<Database>, buildId: string, active: boolean): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const r = await tx.updateTable('models').set({ active }).where('id', '=', buildId).where('kind', '=', 'remote').executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) return false;
    await mergeRefresh(tx, [], false);
    return true;
  });
}
