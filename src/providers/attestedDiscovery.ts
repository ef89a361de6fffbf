/**
 * The I/O of an attested provider's discovery cycle: fetch the healthy backend count from the
 * proxy, and attest one backend through its rotation host on a FRESH connection (so the
 * certificate checked is the one that backend presents). Each report is verified here — the
 * quote by the configured `QuoteVerifier`, then the nonce, key and TLS binding
 * (src/domain/attestedProvider.ts). Failures come back as values with a category; neither the
 * attestation URL (it carries the nonce) nor a key ever goes into a reason or a log.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'undici';
import { z } from 'zod';
import type { QuoteVerifier } from '../attestation/quoteVerifier.js';
import { attestationPath, checkReportBinding, countUrl, rotationHost, type IndexAttestation, type InferenceUrlParts, type SigningAlgo } from '../domain/attestedProvider.js';
import { providerConnector } from './attestedTransport.js';
import { transportCategory } from './openaiUpstream.js';
import type { ProviderTransport } from './providerSpec.js';

export interface AttestedTarget {
  parts: InferenceUrlParts;
  transport: ProviderTransport;
  apiKey: string | undefined;
  timeoutMs: number;
}

type Category = 'connect' | 'timeout' | 'tls' | 'send';

/** The protocol's words for a failed call: a refused key is a TLS failure, anything unnamed a send failure. */
function categoryOf(err: unknown): Category {
  const c = transportCategory(err);
  if (c === 'unpinned') return 'tls';
  return c === 'dropped' || c === 'other' ? 'send' : c;
}

interface OneShot {
  status: number;
  body: string;
  fingerprint: string | null;
}

/** One GET on a fresh connection that is closed afterwards; the fingerprint it presented. */
async function getOnce(origin: string, path: string, t: AttestedTarget, signal?: AbortSignal): Promise<OneShot> {
  let fingerprint: string | null = null;
  const client = new Client(origin, {
    connect: providerConnector({ transport: t.transport, connectMs: t.timeoutMs, onFingerprint: (fp) => (fingerprint = fp) }),
    pipelining: 0,
    headersTimeout: t.timeoutMs,
    bodyTimeout: t.timeoutMs,
  });
  try {
    const res = await client.request({
      method: 'GET',
      path,
      headers: { accept: 'application/json', ...(t.apiKey ? { authorization: `Bearer ${t.apiKey}` } : {}) },
      ...(signal ? { signal } : {}),
    });
    const body = await res.body.text();
    return { status: res.statusCode, body, fingerprint };
  } finally {
    await client.destroy().catch(() => undefined);
  }
}

const origin = (p: InferenceUrlParts, host: string) => `${p.scheme}//${host}${p.port ? `:${p.port}` : ''}`;

export type CountFetch = { ok: true; healthy: number; total: number | null } | { ok: false; reason: string };

const countSchema = z.object({ healthy: z.number().int().nonnegative(), total: z.number().int().nonnegative().optional() });

/** `GET /backends/count` on the proxy's base host, with reasons `count_connect|timeout|send|status|decode`. */
export async function fetchBackendCount(t: AttestedTarget): Promise<CountFetch> {
  const url = new URL(countUrl(t.parts));
  let res: OneShot;
  try {
    res = await getOnce(url.origin, `${url.pathname}${url.search}`, t);
  } catch (err) {
    const c = categoryOf(err);
    return { ok: false, reason: `count_${c === 'tls' ? 'connect' : c}` };
  }
  if (res.status !== 200) return { ok: false, reason: `count_status: ${res.status}` };
  try {
    const parsed = countSchema.parse(JSON.parse(res.body));
    return { ok: true, healthy: parsed.healthy, total: parsed.total ?? null };
  } catch {
    return { ok: false, reason: 'count_decode' };
  }
}

const reportSchema = z.object({
  model_attestations: z
    .array(
      z.object({
        signing_address: z.string().min(1).max(200),
        signing_algo: z.enum(['ed25519', 'ecdsa']).optional(),
        intel_quote: z.string().min(1).max(100_000),
        nvidia_payload: z.unknown().optional(),
        request_nonce: z.string().optional(),
        tls_cert_fingerprint: z.string().max(200).optional(),
      }).passthrough(),
    )
    .min(1),
});

/** Attests backend `index` for `slug` with `algo`, on a fresh connection to its rotation host. */
export async function attestIndex(
  t: AttestedTarget,
  o: { index: number; algo: SigningAlgo; slug: string; verifier: QuoteVerifier; nowSeconds: number; signal?: AbortSignal },
): Promise<IndexAttestation> {
  const { index, algo } = o;
  const nonce = randomBytes(32).toString('hex');
  let res: OneShot;
  try {
    res = await getOnce(origin(t.parts, rotationHost(t.parts, index)), attestationPath({ slug: o.slug, nonce, algo }), t, o.signal);
  } catch (err) {
    return { index, algo, ok: false, reason: categoryOf(err) };
  }
  if (res.status !== 200) return { index, algo, ok: false, reason: `status: ${res.status}` };
  let report: z.infer<typeof reportSchema>['model_attestations'][number];
  try {
    report = reportSchema.parse(JSON.parse(res.body)).model_attestations[0]!;
  } catch {
    return { index, algo, ok: false, reason: 'decode' };
  }
  const presented = res.fingerprint ?? '';
  const refuse = (reason: string): IndexAttestation => ({ index, algo, ok: true, verified: false, fingerprint: presented, reason });
  if (report.signing_algo !== undefined && report.signing_algo !== algo) return refuse('verify: signing_algo is not the one asked for');
  const quote = await o.verifier.verify(report.intel_quote, o.nowSeconds);
  if (!quote.ok) return refuse(`verify: ${quote.reason}`);
  const binding = checkReportBinding({ reportData: quote.reportData, signingAddress: report.signing_address, reportedFingerprint: report.tls_cert_fingerprint, presentedFingerprint: presented, nonce });
  if (binding) return refuse(binding);
  return {
    index,
    algo,
    ok: true,
    verified: true,
    fingerprint: presented,
    signingAddress: report.signing_address.toLowerCase(),
    tcbStatus: quote.tcbStatus,
    nvidiaEvidence: report.nvidia_payload !== undefined && report.nvidia_payload !== null && report.nvidia_payload !== '',
  };
}
