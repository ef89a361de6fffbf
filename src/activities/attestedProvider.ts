/**
 * Activities of an attested provider's discovery cycle, on the provider queue (the workers that
 * hold the providers' transports and keys): count its backends, and attest one backend index.
 * Both return values, never throw for the provider's own failures, so the workflow records every
 * outcome; the quote is verified here (collateral fetches are I/O, DCAP is not sandbox code).
 */
import { Context } from '@temporalio/activity';
import type { QuoteVerifier } from '../attestation/quoteVerifier.js';
import { splitInferenceUrl, type IndexAttestation, type SigningAlgo } from '../domain/attestedProvider.js';
import type { Logger } from '../logger.js';
import { attestIndex, fetchBackendCount, type AttestedTarget, type CountFetch } from '../providers/attestedDiscovery.js';
import type { ProviderDirectory } from '../providers/directory.js';

export interface AttestedProviderDeps {
  directory: ProviderDirectory;
  verifier: QuoteVerifier;
  log: Logger;
}

/** Attestation calls give up after this long whatever the provider's own timeouts say. */
const MAX_CALL_MS = 10_000;

export function createAttestedProviderActivities(deps: AttestedProviderDeps) {
  async function target(providerId: string): Promise<{ ok: true; target: AttestedTarget } | { ok: false; reason: string }> {
    const resolved = await deps.directory.resolve(providerId);
    if ('unusable' in resolved) return { ok: false, reason: `unusable: ${resolved.unusable}` };
    const { record } = resolved;
    if (record.tier !== 'attested') return { ok: false, reason: 'unusable: the provider is not attested' };
    const split = splitInferenceUrl(record.base_url);
    if (!split.ok) return { ok: false, reason: split.reason };
    return {
      ok: true,
      target: { parts: split.parts, transport: record.transport, apiKey: resolved.target.apiKey, timeoutMs: Math.min(MAX_CALL_MS, record.timeouts.first_byte_ms) },
    };
  }

  return {
    async countProviderBackends(input: { providerId: string }): Promise<CountFetch> {
      const t = await target(input.providerId);
      if (!t.ok) return { ok: false, reason: t.reason };
      const count = await fetchBackendCount(t.target);
      if (!count.ok) deps.log.warn({ providerId: input.providerId, reason: count.reason }, 'backend count failed');
      return count;
    },

    async attestProviderBackend(input: { providerId: string; slug: string; index: number; algo: SigningAlgo }): Promise<IndexAttestation> {
      const t = await target(input.providerId);
      if (!t.ok) return { index: input.index, algo: input.algo, ok: false, reason: t.reason };
      const result = await attestIndex(t.target, {
        index: input.index,
        algo: input.algo,
        slug: input.slug,
        verifier: deps.verifier,
        nowSeconds: Math.floor(Date.now() / 1000),
        signal: Context.current().cancellationSignal,
      });
      if (!result.ok || !result.verified) {
        deps.log.warn({ providerId: input.providerId, index: input.index, algo: input.algo, reason: result.reason }, 'backend attestation failed');
      }
      return result;
    },
  };
}

export type AttestedProviderActivities = ReturnType<typeof createAttestedProviderActivities>;
