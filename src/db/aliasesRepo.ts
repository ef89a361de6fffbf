/**
 * Aliases: public model ids pointing to a desired build and optionally the build it rolls
 * from. Setting a new desired build keeps the old one as `previous` unless told otherwise,
 * so a rollout never leaves the alias without a build that is already warm somewhere.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { AliasView } from '../domain/pools.js';
import type { AliasRow, Database } from './schema.js';

export const toAliasView = (r: Pick<AliasRow, 'id' | 'desired_build' | 'previous_build' | 'min_warm'>): AliasView => ({
  id: r.id,
  desired: r.desired_build,
  previous: r.previous_build,
  minWarm: r.min_warm,
});

/** Every alias as the domain sees it, by id. */
export async function readAliasViews(db: Kysely<Database> | Transaction<Database>): Promise<AliasView[]> {
  const rows = await db.selectFrom('aliases').select(['id', 'desired_build', 'previous_build', 'min_warm']).orderBy('id').execute();
  return rows.map(toAliasView);
}

/** Creates the alias `id` → build `id` unless an alias of that id exists. */
export async function ensureAlias(db: Kysely<Database> | Transaction<Database>, id: string, build = id): Promise<void> {
  await db.insertInto('aliases').values({ id, desired_build: build }).onConflict((oc) => oc.column('id').doNothing()).execute();
}

export async function listAliases(db: Kysely<Database>): Promise<AliasRow[]> {
  return db.selectFrom('aliases').selectAll().orderBy('id').execute();
}

export async function getAlias(db: Kysely<Database>, id: string): Promise<AliasRow | undefined> {
  return db.selectFrom('aliases').selectAll().where('id', '=', id).executeTakeFirst();
}

export interface SetAliasInput {
  id: string;
  desired?: string;
  /** undefined: keep (or, when the desired build changes, the old desired build); null: none. */
  previous?: string | null;
  minWarm?: number;
}

export type SetAliasResult =
  | { kind: 'ok'; alias: AliasRow; created: boolean }
  | { kind: 'unknown_build'; build: string; param: 'desired' | 'previous' }
  | { kind: 'desired_required' };

/** Creates or updates an alias in one transaction (the alias row locked while it changes). */
export async function setAlias(db: Kysely<Database>, input: SetAliasInput): Promise<SetAliasResult> {
  return db.transaction().execute(async (tx): Promise<SetAliasResult> => {
    const current = await tx.selectFrom('aliases').selectAll().where('id', '=', input.id).forUpdate().executeTakeFirst();
    const desired = input.desired ?? current?.desired_build;
    if (!desired) return { kind: 'desired_required' };
    let previous = input.previous !== undefined ? input.previous : (current?.previous_build ?? null);
    if (input.previous === undefined && current && input.desired && input.desired !== current.desired_build) {
      previous = current.desired_build;
    }
    if (previous === desired) previous = null;
    const wanted = [
      { build: desired, param: 'desired' as const },
      ...(previous ? [{ build: previous, param: 'previous' as const }] : []),
    ];
    const found = new Set(
      (await tx.selectFrom('models').select('id').where('id', 'in', wanted.map((w) => w.build)).execute()).map((r) => r.id),
    );
    const missing = wanted.find((w) => !found.has(w.build));
    if (missing) return { kind: 'unknown_build', ...missing };
    const values = {
      desired_build: desired,
      previous_build: previous,
      min_warm: input.minWarm ?? current?.min_warm ?? 0,
      updated_at: sql<Date>`now()`,
    };
    const alias = await tx
      .insertInto('aliases')
      .values({ id: input.id, ...values })
      .onConflict((oc) => oc.column('id').doUpdateSet(values))
      .returningAll()
      .executeTakeFirstOrThrow();
    return { kind: 'ok', alias, created: !current };
  });
}
