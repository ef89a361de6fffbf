/** Response signatures of verifiable models (own hosts and attested providers), stored after the response and read back by request id. */
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { ProviderTeeSignature } from '../common/inference.js';
import type { HostSignature } from '../domain/teeSignatures.js';
import type { Database } from './schema.js';

interface StoredCommon {
  requestId: string;
  modelId: string;
  /** The account whose key made the request; null for an anonymous request. */
  accountId: string | null;
}

/** What a response was signed with: our host's signature, or an attested provider backend's. */
export type SignatureToStore = { kind: 'host'; signature: HostSignature } | { kind: 'provider_tee'; signature: ProviderTeeSignature };

/** The columns each kind fills (see migrations/0004 and 0008). */
function signatureColumns(s: SignatureToStore) {
  if (s.kind === 'host') {
    const h = s.signature;
    return { fingerprint: h.fingerprint, public_key: h.signingAddress, signed: JSON.stringify({ text: h.text, signing_algo: 'ed25519' }), signature: h.signature, signature_kind: 'host' as const };
  }
  const t = s.signature;
  return {
    fingerprint: t.tlsFingerprint,
    public_key: t.signingAddress,
    signed: JSON.stringify({ text: t.text, upstream_id: t.upstreamId, signing_algo: t.signingAlgo }),
    signature: t.signature,
    signature_kind: 'provider_tee' as const,
  };
}

/** Idempotent per request id. */
export async function insertSignature(db: Kysely<Database>, o: { requestId: string; modelId: string; accountId: string | null; signed: SignatureToStore }): Promise<void> {
  await db
    .insertInto('response_signatures')
    .values({ request_id: o.requestId, model_id: o.modelId, account_id: o.accountId, ...signatureColumns(o.signed) })
    .onConflict((oc) => oc.column('request_id').doNothing())
    .execute();
}

export type StoredSignature = StoredCommon & ({ kind: 'host'; signature: HostSignature } | { kind: 'provider_tee'; signature: ProviderTeeSignature });

const providerSignedSchema = z.object({ text: z.string(), upstream_id: z.string(), signing_algo: z.enum(['ed25519', 'ecdsa']) });
const hostSignedSchema = z.object({ text: z.string(), signing_algo: z.literal('ed25519') });

/**
 * The signature of a request, or null when there is none. A host row in the format before the
 * shared signed text (`{request_id, model_sha256, response_sha256}`, which `fleet verify` no
 * longer checks) reads as none rather than failing.
 */
export async function readResponseSignature(db: Kysely<Database>, requestId: string): Promise<StoredSignature | null> {
  const row = await db.selectFrom('response_signatures').selectAll().where('request_id', '=', requestId).executeTakeFirst();
  if (!row) return null;
  const raw: unknown = typeof row.signed === 'string' ? JSON.parse(row.signed) : row.signed;
  const common = { requestId: row.request_id, modelId: row.model_id, accountId: row.account_id };
  if (row.signature_kind === 'provider_tee') {
    const p = providerSignedSchema.parse(raw);
    return {
      ...common,
      kind: 'provider_tee',
      signature: { upstreamId: p.upstream_id, text: p.text, signature: row.signature, signingAddress: row.public_key, signingAlgo: p.signing_algo, tlsFingerprint: row.fingerprint },
    };
  }
  const h = hostSignedSchema.safeParse(raw);
  if (!h.success) return null;
  return { ...common, kind: 'host', signature: { text: h.data.text, signature: row.signature, signingAddress: row.public_key, fingerprint: row.fingerprint } };
}
