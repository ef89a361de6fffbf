/**
 * The model catalog: which GGUF builds exist, where, with which hash and context length. The
 * sha256 is what attestation binds to, so re-registering an id replaces the entry whole.
 * A catalog entry is a build; clients reach builds through aliases (aliasesRepo.ts).
 */
import { sql, type Kysely } from 'kysely';
import { ensureAlias } from './aliasesRepo.js';
import type { Database, ModelRow } from './schema.js';

export interface RegisterModelInput {
  id: string;
  path: string;
  sha256: string;
  sizeBytes: number;
  contextLength: number;
  /**
   * The alias clients reach the build by: by default its own id (created only when no alias
   * of that id exists, so a rollout's alias is never repointed by a registration); false: none.
   */
  alias?: string | false;
}

/** Inserts a model, or updates path/hash/size/context of an existing id. Returns the row. */
export async function registerModel(db: Kysely<Database>, input: RegisterModelInput): Promise<ModelRow> {
  const values = {
    path: input.path,
    sha256: input.sha256,
    size_bytes: input.sizeBytes,
    context_length: input.contextLength,
    // A (re-)registered file is judged afresh: it passed validation to get here.
    quarantined_at: null,
    quarantine_reason: null,
    quarantine_host: null,
  };
  return db.transaction().execute(async (tx) => {
    const row = await tx
      .insertInto('models')
      .values({ id: input.id, ...values })
      .onConflict((oc) => oc.column('id').doUpdateSet(values))
      .returningAll()
      .executeTakeFirstOrThrow();
    if (input.alias !== false) {
      const alias = input.alias ?? input.id;
      await ensureAlias(tx, alias, input.id);
      // Own hosts come first: an alias a provider's model created takes our build as desired
      // (the provider's model still serves it, by its canonical id, after our hosts).
      await tx
        .updateTable('aliases')
        .set({ desired_build: input.id, updated_at: sql<Date>`now()` })
        .where('id', '=', alias)
        .where('desired_build', 'in', tx.selectFrom('models').select('id').where('kind', '=', 'remote'))
        .execute();
    }
    return row;
  });
}

export async function getModel(db: Kysely<Database>, id: string): Promise<ModelRow | undefined> {
  return db.selectFrom('models').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listModels(db: Kysely<Database>): Promise<ModelRow[]> {
  return db.selectFrom('models').selectAll().orderBy('id').execute();
}

/**
 * Quarantines a build: a load failed for the build's own sake, so no host is sent to load it
 * again until an operator releases it. Keeps the first reason (later failures are echoes).
 */
export async function quarantineBuild(db: Kysely<Database>, o: { id: string; reason: string; hostId: string }): Promise<void> {
  await db
    .updateTable('models')
    .set({ quarantined_at: sql<Date>`now()`, quarantine_reason: o.reason.slice(0, 500), quarantine_host: o.hostId })
    .where('id', '=', o.id)
    .where('quarantined_at', 'is', null)
    .execute();
}

/**
 * Lifts a quarantine (the operator fixed or replaced the file): the build may be loaded again,
 * and its placements that failed go back to `unloaded`. Returns false for an unknown build.
 */
export async function releaseBuild(db: Kysely<Database>, id: string): Promise<{ found: boolean; wasQuarantined: boolean }> {
  return db.transaction().execute(async (tx) => {
    const before = await tx.selectFrom('models').select('quarantined_at').where('id', '=', id).forUpdate().executeTakeFirst();
    if (!before) return { found: false, wasQuarantined: false };
    await tx.updateTable('models').set({ quarantined_at: null, quarantine_reason: null, quarantine_host: null }).where('id', '=', id).execute();
    await tx
      .updateTable('placements')
      .set({ state: 'unloaded', progress: 0, error: null, updated_at: sql<Date>`now()` })
      .where('model_id', '=', id)
      .where('state', '=', 'failed')
      .execute();
    return { found: true, wasQuarantined: before.quarantined_at !== null };
  });
}

export interface QuarantinedBuild {
  id: string;
  reason: string;
  hostId: string | null;
  since: string;
}

/** Every quarantined build, oldest first (what `/admin/hosts`, `/admin/pools` and `fleet status` show). */
export async function listQuarantined(db: Kysely<Database>): Promise<QuarantinedBuild[]> {
  const rows = await db
    .selectFrom('models')
    .select(['id', 'quarantine_reason', 'quarantine_host', 'quarantined_at'])
    .where('quarantined_at', 'is not', null)
    .orderBy('quarantined_at')
    .execute();
  return rows.map((r) => ({ id: r.id, reason: r.quarantine_reason ?? '', hostId: r.quarantine_host, since: r.quarantined_at!.toISOString() }));
}

export type DeleteBuildResult =
  | { kind: 'deleted'; verifiable: boolean }
  | { kind: 'not_found' }
  | { kind: 'remote' }
  /** Aliases other than its own (or its own, mid-rollout) point at it. */
  | { kind: 'aliased'; aliases: string[] }
  /** Loaded, or being loaded or unloaded, on these hosts. */
  | { kind: 'placed'; hosts: string[] };

/**
 * Removes a GGUF build from the catalog, with the alias of its own id when that alias serves
 * only it (what registration created). Refused while another alias points at it (clients
 * would lose the model) or a host holds it (its memory would be orphaned): the operator
 * repoints or unloads first. The build row locked, so a concurrent alias change waits.
 */
export async function deleteBuild(db: Kysely<Database>, id: string): Promise<DeleteBuildResult> {
  return db.transaction().execute(async (tx): Promise<DeleteBuildResult> => {
    const row = await tx.selectFrom('models').select(['kind', 'verifiable']).where('id', '=', id).forUpdate().executeTakeFirst();
    if (!row) return { kind: 'not_found' };
    if (row.kind === 'remote') return { kind: 'remote' };
    const pointing = await tx
      .selectFrom('aliases')
      .select(['id', 'desired_build', 'previous_build'])
      .where((eb) => eb.or([eb('desired_build', '=', id), eb('previous_build', '=', id)]))
      .orderBy('id')
      .execute();
    const own = (a: (typeof pointing)[number]) => a.id === id && a.desired_build === id && a.previous_build === null;
    const others = pointing.filter((a) => !own(a)).map((a) => a.id);
    if (others.length > 0) return { kind: 'aliased', aliases: others };
    const placed = await tx
      .selectFrom('placements')
      .select('host_id')
      .where('model_id', '=', id)
      .where('state', 'in', ['loaded', 'loading', 'unloading'])
      .orderBy('host_id')
      .execute();
    if (placed.length > 0) return { kind: 'placed', hosts: placed.map((p) => p.host_id) };
    await tx.deleteFrom('aliases').where('id', '=', id).where('desired_build', '=', id).execute();
    await tx.deleteFrom('models').where('id', '=', id).execute();
    return { kind: 'deleted', verifiable: row.verifiable };
  });
}
