/** Response signatures of verifiable models, stored after the response and read back by request id. */
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { ResponseSignature } from '../domain/attestation.js';
import type { Database } from './schema.js';

export interface StoredSignature extends ResponseSignature {
  requestId: string;
  modelId: string;
  /** The account whose key made the request; null for an anonymous request. */
  accountId: string | null;
}

const signedSchema = z.object({ request_id: z.string(), model_sha256: z.string(), response_sha256: z.string() });

/** Idempotent per request id. */
export async function insertResponseSignature(
  db: Kysely<Database>,
  o: { requestId: string; modelId: string; accountId: string | null; signature: ResponseSignature },
): Promise<void> {
  const s = o.signature;
  await db
    .insertInto('response_signatures')
    .values({
      request_id: o.requestId,
      model_id: o.modelId,
      account_id: o.accountId,
      fingerprint: s.fingerprint,
      public_key: s.publicKey,
      signed: JSON.stringify(s.signed),
      signature: s.signature,
    })
    .onConflict((oc) => oc.column('request_id').doNothing())
    .execute();
}

export async function readResponseSignature(db: Kysely<Database>, requestId: string): Promise<StoredSignature | null> {
  const row = await db.selectFrom('response_signatures').selectAll().where('request_id', '=', requestId).executeTakeFirst();
  if (!row) return null;
  const signed = signedSchema.parse(typeof row.signed === 'string' ? JSON.parse(row.signed) : row.signed);
  return { requestId: row.request_id, modelId: row.model_id, accountId: row.account_id, fingerprint: row.fingerprint, publicKey: row.public_key, signed, signature: row.signature };
}
