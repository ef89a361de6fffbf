/**
 * Activities of the provider workers (queue `fleet.providers`): `generate` against a remote
 * OpenAI-compatible provider — the same contract as a GPU host's `generate`: same input,
 * result, typed failures and stream channel — and `listModels` for its refresh. Stateless: any
 * number of workers may serve the queue.
 *
 * Failures before anything reached the stream retry on the same provider with bounded backoff
 * (honouring its Retry-After), then leave it to the workflow's next replica (`UpstreamUnavailable`);
 * the provider's refusal of the request itself goes to the client (`UpstreamRejected`). After text
 * was streamed nothing moves: the failure says how much was sent. A cancelled call aborts the
 * upstream request and reports what was used in the cancellation's details, for the API to settle.
 */
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import { FailureType } from '../common/failures.js';
import type { GenerateInput, GenerateResult } from '../common/inference.js';
import { remoteBuildId, type Listing } from '../domain/providerCatalog.js';
import { typedFailure } from '../common/typedFailure.js';
import { classifyUpstreamFailure, retryDelayMs } from '../domain/upstreamRetry.js';
import type { Logger } from '../logger.js';
import { recordGeneration } from '../metrics.js';
import type { ProviderDirectory } from '../providers/directory.js';
import type { AttestedRoute } from '../providers/attestedRoutes.js';
import { fetchProviderSignature } from '../providers/attestedSignature.js';
import { callUpstream, listUpstreamModels, UpstreamError, type UpstreamAnswer } from '../providers/openaiUpstream.js';
import { promptChars } from '../domain/budget.js';
import { createChunkPublisher, publishFinal } from '../stream/chunkPublisher.js';
import { chunkSource } from '../common/replicas.js';
import { conversationBlocks } from '../common/prefixBlocks.js';
import type { StreamChannel } from '../stream/channel.js';

export interface ProviderActivityDeps {
  directory: ProviderDirectory;
  channel: StreamChannel;
  log: Logger;
}

/** Waits `ms` unless the activity is cancelled first. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => (clearTimeout(t), reject(signal.reason));
    // The listener goes with the timer: a long retry loop must not pile them up on one signal.
    const t = setTimeout(() => (signal.removeEventListener('abort', onAbort), resolve()), ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The served backend's signature, or an `UpstreamError` (category `verify`) that moves to the next replica. */
async function signatureOf(o: { attested: AttestedRoute; baseUrl: string; answer: UpstreamAnswer; apiKey: string | undefined; slug: string; timeoutMs: number; signal: AbortSignal }) {
  if (!o.answer.id) throw new UpstreamError({ kind: 'transport', category: 'verify' }, 'upstream answer has no id to fetch its signature by');
  const got = await fetchProviderSignature({
    baseUrl: o.baseUrl,
    dispatcher: o.attested.dispatcher,
    apiKey: o.apiKey,
    timeoutMs: o.timeoutMs,
    upstreamId: o.answer.id,
    slug: o.slug,
    exchange: o.answer.exchange,
    keys: o.attested.keys,
    pins: o.attested.pins,
    signal: o.signal,
  });
  if (!got.ok) throw new UpstreamError({ kind: 'transport', category: 'verify' }, `response signature refused (${got.reason})`);
  return got.signature;
}

export function createProviderActivities(deps: ProviderActivityDeps) {
  return {
    async generate(input: GenerateInput): Promise<GenerateResult> {
      const ctx = Context.current();
      const signal = ctx.cancellationSignal;
      const remote = input.remote;
      if (!remote) throw typedFailure(FailureType.InvalidRequest, 'a provider generate needs a remote build');
      // The API refuses these for remote builds; a request recorded otherwise fails plainly.
      if (input.input.kind === 'embedding') throw typedFailure(FailureType.InvalidRequest, 'embeddings are not supported for models served by a remote provider');
      const log = deps.log.child({ requestId: input.requestId, providerId: remote.providerId });
      const resolved = await deps.directory.resolve(remote.providerId);
      if ('unusable' in resolved) throw typedFailure(FailureType.UpstreamUnavailable, resolved.unusable, { category: 'unusable', counts: false });
      const { record, target } = resolved;
      // An attested provider is called only over connections whose TLS key a discovery cycle
      // pinned, at its rotation hosts; with nothing pinned yet there is nothing to call.
      const attested = record.tier === 'attested' ? await deps.directory.attested.route(record, remoteBuildId(remote.providerId, remote.upstreamModel)) : undefined;
      if (attested && attested.pins.size === 0) {
        throw typedFailure(FailureType.UpstreamUnavailable, `provider ${record.id}: no backend key is pinned yet`, { category: 'unpinned', counts: false });
      }
      const source = `provider:${record.id}`;
      const attemptSource = chunkSource(source, ctx.info);
      const publisher = input.stream ? createChunkPublisher(deps.channel, input.requestId, attemptSource, log) : undefined;
      const streamUpstream = input.stream && record.streaming;
      const beat = () => ctx.heartbeat({ chars: publisher?.published ?? 0 });
      const beats = setInterval(beat, 1000);
      const started = performance.now();
      // An attested provider's first try goes to the backend holding this conversation (or its session's).
      const blocks = attested ? conversationBlocks(input.input) : [];
      try {
        for (let retry = 1; ; retry++) {
          try {
            const baseUrl = !attested ? target.baseUrl : retry === 1 ? attested.firstBaseUrl({ blocks, ...(input.session !== undefined ? { session: input.session } : {}) }) : attested.nextBaseUrl();
            const tried = performance.now();
            let firstTextAt: number | undefined;
            const answer = await callUpstream(attested ? { ...target, baseUrl, dispatcher: attested.dispatcher } : target, {
              model: remote.upstreamModel,
              input: input.input,
              params: input.params,
              stream: streamUpstream,
              signal,
              onText: (t) => {
                firstTextAt ??= performance.now();
                if (!publisher) return;
                // A stream's first text is recorded at once: it may no longer move elsewhere.
                const first = publisher.published === 0;
                publisher.push(t);
                if (first) beat();
              },
            });
            // An attested answer counts only with its backend's signature, checked against a pinned key.
            const answeredAt = performance.now();
            const teeSignature = attested ? await signatureOf({ attested, baseUrl, answer, apiKey: target.apiKey, slug: remote.upstreamModel, timeoutMs: record.timeouts.first_byte_ms, signal }) : undefined;
            // Remembered only once its signature checked: the next turn of this conversation goes there.
            attested?.served(baseUrl, { ttftMs: (firstTextAt ?? answeredAt) - tried, blocks: conversationBlocks(input.input, answer.text) });
            // A provider that cannot stream serves a stream in one piece.
            if (publisher && !streamUpstream) publisher.push(answer.text);
            await publisher?.flush();
            recordGeneration(input.modelId, answer.usage.completionTokens, (performance.now() - started) / 1000);
            const replica = { kind: 'provider' as const, providerId: record.id };
            const usageEstimated = answer.usageEstimated ? { usageEstimated: true } : {};
            if (!teeSignature) {
              // Unsigned: the API may answer from this before the workflow closes (EarlyAnswer).
              const final = { finishReason: answer.finishReason, usage: answer.usage, replica, hostId: source, failovers: input.failovers ?? 0, ...usageEstimated };
              void publishFinal(deps.channel, { requestId: input.requestId, source: attemptSource, log, text: answer.text, streamed: publisher, final });
            }
            return {
              text: answer.text,
              finishReason: answer.finishReason,
              usage: answer.usage,
              replica,
              hostId: source,
              ...usageEstimated,
              ...(teeSignature ? { teeSignature } : {}),
            };
          } catch (err) {
            if (signal.aborted) throw err;
            if (!(err instanceof UpstreamError)) throw err;
            const streamed = publisher?.published ?? 0;
            const verdict = classifyUpstreamFailure(err.failure);
            const status = err.failure.kind === 'http' ? err.failure.status : undefined;
            log.warn({ category: err.failure.kind === 'http' ? 'status' : err.failure.category, status, retry, verdict: verdict.verdict }, 'provider call failed');
            if (verdict.verdict === 'client' && err.rejected && streamed === 0) {
              throw typedFailure(FailureType.UpstreamRejected, `the provider refused the request: ${err.rejected.message}`, err.rejected);
            }
            const delay = streamed === 0 && verdict.verdict === 'retry_same' ? retryDelayMs(retry, err.failure) : null;
            if (delay !== null) {
              await pause(delay, signal);
              continue;
            }
            throw typedFailure(FailureType.UpstreamUnavailable, `provider ${record.id}: ${err.message}`, {
              category: err.failure.kind === 'http' ? 'status' : err.failure.category,
              ...(status !== undefined ? { status } : {}),
              ...(err.failure.kind === 'http' && err.failure.retryAfterSeconds !== undefined ? { retryAfterSeconds: err.failure.retryAfterSeconds } : {}),
              charsStreamed: streamed,
              counts: verdict.counts,
            });
          }
        }
      } catch (err) {
        await publisher?.flush();
        if (signal.aborted) {
          // What the client got (estimated at ≈ 4 characters per token): the API settles to it.
          const sent = publisher?.published ?? 0;
          const prompt = promptChars(input.input);
          throw new CancelledFailure('generation cancelled', [{ promptTokens: Math.ceil(prompt / 4), completionTokens: Math.ceil(sent / 4) }]);
        }
        throw err;
      } finally {
        clearInterval(beats);
      }
    },

    /** The provider's model list, for its refresh; a failure is an answer too (the batch is then partial). */
    async listModels(input: { providerId: string }): Promise<Listing> {
      const resolved = await deps.directory.resolve(input.providerId);
      if ('unusable' in resolved) return { providerId: input.providerId, ok: false, reason: resolved.unusable };
      try {
        const models = await listUpstreamModels(resolved.target, Context.current().cancellationSignal);
        return { providerId: input.providerId, ok: true, models };
      } catch (err) {
        const reason = err instanceof UpstreamError ? err.message : 'list failed';
        deps.log.warn({ providerId: input.providerId, reason }, 'provider model list failed');
        return { providerId: input.providerId, ok: false, reason };
      }
    },
  };
}

export type ProviderActivities = ReturnType<typeof createProviderActivities>;
