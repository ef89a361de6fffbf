/** Response signatures of verifiable models (own hosts and attested providers), stored after the response and read back by request id. */
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { ProviderTeeSignature } from '../common/inference.js';
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

/** An attested provider backend's signature (idempotent per request id). */
export async function insertProviderSignature(
  db: Kysely<Database>,
  o: { requestId: string; modelId: string; accountId: string | null; signature: ProviderTeeSignature },
): Promise<void> {
  const s = o.signature;
  await db
    .insertInto('response_signatures')
    .values({
      request_id: o.requestId,
      model_id: o.modelId,
      account_id: o.accountId,
      fingerprint: s.tlsFingerprint,
      public_key: s.signingAddress,
      signed: JSON.stringify({ text: s.text, upstream_id: s.upstreamId, signing_algo: s.signingAlgo }),
      signature: s.signature,
      signature_kind: 'provider_tee',
    })
    .onConflict((oc) => oc.column('request_id').doNothing())
    .execute();
}

export interface StoredProviderSignature {
  kind: 'provider_tee';
  requestId: string;
  modelId: string;
  accountId: string | null;
  signature: ProviderTeeSignature;
}

const providerSignedSchema = z.object({ text: z.string(), upstream_id: z.string(), signing_algo: z.enum(['ed25519', 'ecdsa']) });

export async function readResponseSignature(db: Kysely<Database>, requestId: string): Promise<(StoredSignature & { kind: 'host' }) | StoredProviderSignature | null> {
  const row = await db.selectFrom('response_signatures').selectAll().where('request_id', '=', requestId).executeTakeFirst();
  if (!row) return null;
  const raw = typeof row.signed === 'string' ? JSON.parse(row.signed) : row.signed;
  if (row.signature_kind === 'provider_tee') {
    const p = providerSignedSchema.parse(raw);
    return {
      kind: 'provider_tee',
      requestId: row.request_id,
      modelId: row.model_id,
      accountId: row.account_id,
      signature: { upstreamId: p.upstream_id, text: p.text, signature: row.signature, signingAddress: row.public_key, signingAlgo: p.signing_algo, tlsFingerprint: row.fingerprint },
    };
  }
  const signed = signedSchema.parse(raw);
  return { kind: 'host', requestId: row.request_id, modelId: row.model_id, accountId: row.account_id, fingerprint: row.fingerprint, publicKey: row.public_key, signed, signature: row.signature };
}
