/**
 * The model catalog: which GGUF builds exist, where, with which hash and context length. The
 * sha256 is what attestation binds to, so re-registering an id replaces the entry whole.
 * A catalog entry is a build; clients reach builds through aliases (aliasesRepo.ts).
 */
import type { Kysely } from 'kysely';
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
  };
  return db.transaction().execute(async (tx) => {
    const row = await tx
      .insertInto('models')
      .values({ id: input.id, ...values })
      .onConflict((oc) => oc.column('id').doUpdateSet(values))
      .returningAll()
      .executeTakeFirstOrThrow();
    if (input.alias !== false) await ensureAlias(tx, input.alias ?? input.id, input.id);
    return row;
  });
}

export async function getModel(db: Kysely<Database>, id: string): Promise<ModelRow | undefined> {
  return db.selectFrom('models').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listModels(db: Kysely<Database>): Promise<ModelRow[]> {
  return db.selectFrom('models').selectAll().orderBy('id').execute();
}
