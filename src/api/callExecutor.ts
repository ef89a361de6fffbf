/**
 * One inference call end to end, whatever wire format it came in: reserve the key's budget
 * (keyed calls only), start the `inferenceRequest` workflow (its id is the response id), relay
 * the replica's streamed text in order, answer as soon as the replica published its answer (or
 * the workflow's result, whichever comes first), and end the reservation — settled to
 * the actual usage on success and on cancellation (the replica reports what it used in its
 * cancellation), released on every other exit. Budgets are settled here and only here. Every
 * outcome reaches the request log and the request metrics. The wire format (src/api/wire/*)
 * turns the body into an `InferenceCall` and renders what this module hands its `CallSink`;
 * nothing here knows Express or any envelope.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter, type Payload, type PayloadCodec } from '@temporalio/common';
import type { Kysely } from 'kysely';
import type { InferenceInput, InferenceResult, SamplingParams, Usage } from '../common/inference.js';
import { retryThroughOutage } from '../common/outage.js';
import { createHash } from 'node:crypto';
import { conversationBlocks, isOpeningTurn } from '../common/prefixBlocks.js';
import { replicaSource } from '../common/replicas.js';
import type { RequestPrefix } from '../domain/prefixRouting.js';
import { FleetHost, FleetModel, FleetRequestKind } from '../common/searchAttributes.js';
import { REQUEST_QUEUE } from '../common/taskQueues.js';
import { releaseReservationIfHeld, reserveTokens, settleReservation, type WindowState } from '../db/budgetRepo.js';
import { insertRequestLog } from '../db/requestLogRepo.js';
import type { Database, RequestKind } from '../db/schema.js';
import { insertSignature, type SignatureToStore } from '../db/signaturesRepo.js';
import type { Logger } from '../logger.js';
import { recordBudgetRefusal, recordFirstText, recordInferenceResult, recordKeyTokens, recordRequest, recordRequestError } from '../metrics.js';
import { createAnswerListener, type PublishedAnswer } from '../stream/answerListener.js';
import type { StreamChannel } from '../stream/channel.js';
import type { inferenceRequest } from '../workflows/inferenceRequest.js';
import type { Principal } from './auth.js';
import type { ModelCatalog } from './catalog.js';
import type { FleetSnapshot } from './fleetSnapshot.js';
import { ApiError, budgetRefused, fromWorkflowFailure, keyRevoked } from './errors.js';
import type { KeyResolver } from './keyResolver.js';

export interface ApiDeps {
  client: Client;
  channel: StreamChannel;
  db: Kysely<Database>;
  catalog: ModelCatalog;
  log: Logger;
  requireAuth: boolean;
  keys: KeyResolver;
  budgets: {
    /** Held reservations expire (and the sweep releases them) this long after they were taken. */
    reservationTtlS: number;
    /** workflowExecutionTimeout of a request; shorter than the TTL (see config.ts). */
    requestTimeoutS: number;
  };
  /** The payload codec, to read a cancellation's usage from the history. */
  codec?: PayloadCodec;
  /** Routes a request's first round without a query when current (absent: the workflow routes). */
  fleet?: FleetSnapshot;
}

export interface InferenceCall {
  /** The response id the wire format chose (`chatcmpl-…`, `cmpl-…`): also the workflow id. */
  requestId: string;
  /** What the request log and metrics call the endpoint. */
  kind: RequestKind;
  modelId: string;
  input: InferenceInput;
  params: SamplingParams;
  stream: boolean;
  principal: Principal | null;
  /** Upper bound of the tokens this call can use (src/domain/budget.ts); reserved when keyed. */
  reserveTokens: number;
  /** Hex sha256 of the client's request body (what a host signature binds to). */
  requestSha256?: string;
  /** Only count the prompt's tokens (nothing generated, nothing reserved). */
  countOnly?: boolean;
  /** The client's session key (`x-session-id`, or the body's user): turns of a session meet on one host. */
  session?: string;
}

/**
 * What the executor answers with: the workflow's result, or — sooner — the replica's early
 * answer from the stream channel (text plus EarlyAnswer), whichever comes first.
 */
export type Answer = Pick<InferenceResult, 'text' | 'finishReason' | 'usage' | 'replica' | 'hostId' | 'failovers' | 'signature' | 'teeSignature' | 'usageEstimated' | 'stopSequence' | 'embeddings'>;

/** What a wire format renders. Text arrives in order, from one replica only. */
export interface CallSink {
  /** The client is gone (the executor then cancels the workflow). */
  readonly closed: boolean;
  onClose(listener: () => void): void;
  /** The key's window after its reservation (before anything else is sent): the rate-limit headers. */
  limits?(window: WindowState): void;
  text(delta: string): void;
  done(result: Answer): void;
  fail(error: ApiError): void;
}

const REFUSAL_REASON = { balance: 'balance', window: 'window', exceedsWindow: 'exceeds_window' } as const;

export async function executeCall(deps: ApiDeps, call: InferenceCall, sink: CallSink): Promise<void> {
  const log = deps.log.child({ requestId: call.requestId, model: call.modelId });
  const started = new Date();
  const elapsedSeconds = () => (Date.now() - started.getTime()) / 1000;
  const writeLog = (o: { replica: InferenceResult['replica'] | null; principal: string | null; status: 'ok' | 'error' | 'cancelled'; result?: Answer; failure?: ApiError; usage?: Usage }) =>
    retryThroughOutage(
      () =>
        insertRequestLog(deps.db, {
          id: call.requestId,
          kind: call.kind,
          model_id: call.modelId,
          host_id: o.replica?.kind === 'host' ? o.replica.hostId : (o.result && !o.result.replica ? o.result.hostId : null),
          provider_id: o.replica?.kind === 'provider' ? o.replica.providerId : null,
          principal: o.principal,
          stream: call.stream,
          status: o.status,
          finish_reason: o.result?.finishReason ?? null,
          error_code: o.failure?.code ?? null,
          prompt_tokens: o.usage?.promptTokens ?? 0,
          completion_tokens: o.usage?.completionTokens ?? 0,
          started_at: started,
          finished_at: new Date(),
          duration_ms: Date.now() - started.getTime(),
        }),
      { maxMs: 30_000 },
    ).catch((err: Error) => log.warn({ err: err.message }, 'request log write failed'));

  let handle: WorkflowHandle<typeof inferenceRequest> | undefined;
  let done = false;
  let clientGone = false;
  const cancel = () => {
    log.info('client disconnected; cancelling the request');
    handle!.cancel().catch(() => undefined);
  };
  // Listening from the start: a client may leave while the reservation is being taken.
  sink.onClose(() => {
    if (done) return;
    clientGone = true;
    if (handle) cancel();
  });

  // Reserve before anything is dispatched: a refusal costs one transaction and nothing else.
  let principal = call.principal;
  if (principal) {
    const outcome = await reserveTokens(deps.db, {
      requestId: call.requestId,
      keyId: principal.keyId,
      amount: call.reserveTokens,
      ttlSeconds: deps.budgets.reservationTtlS,
    });
    if (outcome.kind === 'revoked') {
      // Revoked by another API process since our cache read it: forget it here too.
      deps.keys.invalidate(principal.keyId);
      if (deps.requireAuth) return refuse(keyRevoked(), principal.keyId);
      principal = null; // as for any unrecognized key: served anonymously
    } else if (outcome.kind === 'reserved') {
      if (outcome.window) sink.limits?.(outcome.window);
    } else if (outcome.kind === 'refused') {
      const r = outcome.refusal;
      if (r.kind === 'window' || r.kind === 'exceedsWindow') sink.limits?.({ limit: r.limit, remaining: 0, seconds: r.seconds });
      recordBudgetRefusal(REFUSAL_REASON[outcome.refusal.kind]);
      return refuse(budgetRefused(outcome.refusal), principal.keyId);
    }
  }

  // The replica's early answer (EarlyAnswer): the first complete one wins.
  let first = true;
  const listener = createAnswerListener({
    stream: call.stream,
    emit: (text) => {
      if (first) recordFirstText({ endpoint: call.kind, model: call.modelId, seconds: elapsedSeconds() });
      first = false;
      if (!sink.closed) sink.text(text);
    },
  });
  const { order } = listener;
  let unsubscribe: (() => void) | undefined;
  let result: Answer | undefined;
  let failure: ApiError | undefined;
  try {
    // Subscribe before the workflow exists, so no chunk can be published before we listen. An
    // unstreamed answer does without when the channel is down: it then comes from the workflow.
    unsubscribe = await deps.channel.subscribe(call.requestId, (c) => listener.onChunk(c)).catch((err: Error) => {
      if (call.stream) throw err;
      log.warn({ err: err.message }, 'stream channel unavailable: answering from the workflow result');
      return undefined;
    });
    // Decided here when the snapshot is current and says "serve now": the workflow's first task
    // then schedules `generate` at once, and its first replica is a search attribute from the start.
    const prefix = requestPrefix(call);
    const route = deps.fleet?.preRoute({ alias: call.modelId, requestId: call.requestId, stream: call.stream, ...(prefix ? { prefix } : {}) });
    if (route) deps.fleet?.dispatched(call.requestId, route);
    const firstReplica = route?.attempts[0]?.replica;
    handle = await deps.client.workflow.start<typeof inferenceRequest>('inferenceRequest', {
      taskQueue: REQUEST_QUEUE,
      workflowId: call.requestId,
      args: [
        {
          requestId: call.requestId,
          modelId: call.modelId,
          input: call.input,
          params: call.params,
          stream: call.stream,
          principal: principal?.keyId ?? null,
          accountId: principal?.accountId ?? null,
          ...(call.requestSha256 ? { requestSha256: call.requestSha256 } : {}),
          ...(call.countOnly ? { countOnly: true } : {}),
          ...(route ? { route } : {}),
          ...(prefix ? { prefix } : {}),
        },
      ],
      // Closes before the reservation expires, so the sweep never releases a live request's hold.
      workflowExecutionTimeout: deps.budgets.requestTimeoutS * 1000,
      requestEagerStart: true,
      typedSearchAttributes: [
        { key: FleetModel, value: call.modelId },
        { key: FleetRequestKind, value: call.kind },
        ...(firstReplica ? [{ key: FleetHost, value: replicaSource(firstReplica) }] : []),
      ],
    });
    // Gone while the workflow was being started: nobody is waiting for (or paying for) it.
    if (clientGone) cancel();
    // The answer goes out as soon as the replica published it; the workflow closes on its own,
    // durably recording the outcome (what it says after an early answer changes nothing here).
    const closed = handle.result();
    const early = listener.early.then((a) => ({ early: true as const, answer: a }));
    const winner = await Promise.race([closed.then((r) => ({ early: false as const, answer: r })), early]);
    result = winner.answer;
    if (winner.early) watchRecord(closed, winner.answer, log);
    else closed.catch(() => undefined);
  } catch (err) {
    failure = fromWorkflowFailure(err, call.modelId);
    if (failure.status >= 500 && failure.status !== 503) log.error({ err }, 'inference failed');
  } finally {
    done = true;
    unsubscribe?.();
    deps.fleet?.settled(call.requestId);
  }

  if (result && !result.text.startsWith(order.sent)) {
    // Another replica answered after this client got part of a different answer.
    failure = new ApiError(502, 'The replica failed mid-stream; the answer is incomplete.', 'api_error', 'upstream_error');
    result = undefined;
  }
  if (!sink.closed) {
    if (result) {
      // The workflow result is the durable record: whatever the channel did not deliver.
      const rest = result.text.slice(order.sent.length);
      if (call.stream && rest) order.finishWith(rest);
      sink.done(result);
    } else sink.fail(failure!);
  }

  // A verifiable model's signature, right after the response (GET /v1/signature/:requestId).
  const signed: SignatureToStore | undefined = result?.signature
    ? { kind: 'host', signature: result.signature }
    : result?.teeSignature
      ? { kind: 'provider_tee', signature: result.teeSignature }
      : undefined;
  if (signed) {
    await retryThroughOutage(
      () => insertSignature(deps.db, { requestId: call.requestId, modelId: call.modelId, accountId: principal?.accountId ?? null, signed }),
      { maxMs: 30_000 },
    ).catch((err: Error) => log.error({ err: err.message, kind: signed.kind }, 'storing the response signature failed'));
  }

  // The outcome's status, even when a mid-stream failure went out after a 200 header.
  recordRequest({ endpoint: call.kind, model: call.modelId, stream: call.stream, status: failure?.status ?? 200, seconds: elapsedSeconds() });
  if (failure) recordRequestError({ endpoint: call.kind, status: failure.status, code: failure.code });
  if (result && !call.countOnly) {
    recordInferenceResult({ model: call.modelId, promptTokens: result.usage.promptTokens, completionTokens: result.usage.completionTokens, failovers: result.failovers });
  }

  // After the response: the client does not wait for the bookkeeping.
  if (result?.replica?.kind === 'host') deps.fleet?.answered({ hostId: result.replica.hostId, blocks: conversationBlocks(call.input, result.text) });
  const cancelled = failure?.status === 499;
  const used = result?.usage ?? (cancelled && handle ? await cancelledUsage(handle, deps.codec).catch(() => undefined) : undefined);
  if (principal) await endReservation(deps, log, call.requestId, principal, result ? result.usage : used);
  await writeLog({
    replica: result?.replica ?? null,
    principal: principal?.keyId ?? null,
    status: result ? 'ok' : cancelled ? 'cancelled' : 'error',
    result,
    failure,
    usage: used,
  });

  function refuse(err: ApiError, keyId: string): Promise<void> {
    sink.fail(err);
    recordRequest({ endpoint: call.kind, model: call.modelId, stream: call.stream, status: err.status, seconds: elapsedSeconds() });
    recordRequestError({ endpoint: call.kind, status: err.status, code: err.code });
    return writeLog({ replica: null, principal: keyId, status: 'error', failure: err }).then(() => undefined);
  }
}

/**
 * What routing weighs a call's prefix reuse by: its conversation's block hashes, and a digest of
 * the session key (the raw key is the client's, never recorded). Nothing to go by: undefined.
 */
function requestPrefix(call: InferenceCall): RequestPrefix | undefined {
  const blocks = conversationBlocks(call.input);
  const session = call.session !== undefined ? createHash('sha256').update(call.session).digest('hex').slice(0, 16) : undefined;
  if (blocks.length === 0 && session === undefined) return undefined;
  return { blocks, ...(session !== undefined ? { session } : {}), ...(isOpeningTurn(call.input) ? { opening: true } : {}) };
}

/**
 * After an early answer the workflow still closes on its own; what it records should be what the
 * client got. When it is not (the replica died between publishing and reporting, and another one
 * answered for nobody; or the workflow failed), say so: the client's answer, the reservation's
 * settlement and the request log follow the answer that went out.
 */
function watchRecord(closed: Promise<InferenceResult>, sent: PublishedAnswer, log: Logger): void {
  closed.then(
    (r) => {
      if (r.text !== sent.text || r.hostId !== sent.hostId) log.warn({ answered: sent.hostId, recorded: r.hostId }, 'the workflow recorded another answer than the one sent early');
    },
    (err: Error) => log.warn({ answered: sent.hostId, err: err.message }, 'the workflow failed after its answer was sent early'),
  );
}

/**
 * What a cancelled request used: the replica reported it in its `generate`'s cancellation
 * (ActivityTaskCanceled details), read back from the history — the durable record.
 */
async function cancelledUsage(handle: WorkflowHandle, codec: PayloadCodec | undefined): Promise<Usage | undefined> {
  const events = (await handle.fetchHistory()).events ?? [];
  for (let i = events.length - 1; i >= 0; i--) {
    const payloads = events[i]!.activityTaskCanceledEventAttributes?.details?.payloads as Payload[] | undefined;
    if (!payloads?.length) continue;
    const [p] = codec ? await codec.decode(payloads) : payloads;
    const u = defaultPayloadConverter.fromPayload<Partial<Usage>>(p!);
    if (typeof u?.promptTokens === 'number' && typeof u.completionTokens === 'number') return { promptTokens: u.promptTokens, completionTokens: u.completionTokens };
  }
  return undefined;
}

/**
 * Settles the reservation to `usage` (a success, or what a cancelled request used) or releases
 * it (anything else). Never throws: the response is out, and a hold left behind is released by
 * the sweep when it expires — after retrying through a database outage first.
 */
async function endReservation(deps: ApiDeps, log: Logger, requestId: string, principal: Principal, usage: Usage | undefined): Promise<void> {
  const retry = { onRetry: (attempt: number) => log.warn({ attempt, keyId: principal.keyId }, 'database unreachable; retrying the settlement') };
  try {
    if (usage) {
      const settled = await retryThroughOutage(() => settleReservation(deps.db, requestId, usage), retry);
      if (settled) recordKeyTokens({ accountId: settled.accountId, keyId: settled.keyId, ...usage });
      return;
    }
    await retryThroughOutage(() => releaseReservationIfHeld(deps.db, requestId), retry);
  } catch (err) {
    log.error({ err: (err as Error).message, keyId: principal.keyId }, 'settling the reservation failed; the sweep will release it');
  }
}
