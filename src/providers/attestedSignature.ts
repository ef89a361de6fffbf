/**
 * Fetching and checking an attested provider's response signature: `GET
 * /v1/signature/<upstream id>?model=<slug>&signing_algo=ed25519` from the same backend (its
 * rotation host, over the pinned-only pool) that served the completion. Accepted only when its
 * text is exactly `<slug>:<sha256 of the request body we sent>:<sha256 of the body we got>`, the
 * signature verifies, and the signing key is one a pinned fingerprint's attested report vouched
 * for. A failure is a category, never the URL.
 */
import type { Agent } from 'undici';
import { z } from 'zod';
import type { ProviderTeeSignature } from '../common/inference.js';
import type { VouchedKeys } from '../domain/attestedProvider.js';
import { signedText, verifyTeeSignature } from '../domain/teeSignatures.js';
import { transportCategory } from './openaiUpstream.js';

const answerSchema = z.object({
  text: z.string().max(2000),
  signature: z.string().max(300),
  signing_address: z.string().max(200),
  signing_algo: z.literal('ed25519'),
});

export interface SignatureFetch {
  baseUrl: string;
  dispatcher: Agent;
  apiKey: string | undefined;
  timeoutMs: number;
  upstreamId: string;
  slug: string;
  exchange: { requestBody: string; responseBody: Uint8Array };
  keys: Readonly<Record<string, VouchedKeys>>;
  pins: ReadonlySet<string>;
  signal: AbortSignal;
}

export async function fetchProviderSignature(o: SignatureFetch): Promise<{ ok: true; signature: ProviderTeeSignature } | { ok: false; reason: string }> {
  // The protocol's path is absolute (`/v1/signature/…`) whatever path the inference URL has.
  const origin = new URL(o.baseUrl).origin;
  const path = `/v1/signature/${encodeURIComponent(o.upstreamId)}?${new URLSearchParams({ model: o.slug, signing_algo: 'ed25519' })}`;
  let status: number;
  let body: string;
  try {
    const res = await o.dispatcher.request({
      origin,
      path,
      method: 'GET',
      headers: { accept: 'application/json', ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}) },
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.timeoutMs,
      signal: o.signal,
    });
    status = res.statusCode;
    body = await res.body.text();
  } catch (err) {
    return { ok: false, reason: transportCategory(err) === 'unpinned' ? 'unpinned' : 'connect' };
  }
  if (status !== 200) return { ok: false, reason: `status: ${status}` };
  let a: z.infer<typeof answerSchema>;
  try {
    a = answerSchema.parse(JSON.parse(body));
  } catch {
    return { ok: false, reason: 'decode' };
  }
  const expected = signedText({ model: o.slug, requestBody: o.exchange.requestBody, responseBody: o.exchange.responseBody });
  if (a.text !== expected) return { ok: false, reason: 'verify: the signed text is not this exchange' };
  if (!verifyTeeSignature({ text: a.text, signature: a.signature, signingAddress: a.signing_address, algo: 'ed25519' })) return { ok: false, reason: 'verify: bad signature' };
  const address = a.signing_address.toLowerCase();
  const fp = [...o.pins].find((f) => o.keys[f]?.ed25519 === address);
  if (!fp) return { ok: false, reason: 'verify: the signing key is not one a pinned backend attested' };
  return { ok: true, signature: { upstreamId: o.upstreamId, text: a.text, signature: a.signature, signingAddress: address, signingAlgo: 'ed25519', tlsFingerprint: fp } };
}
