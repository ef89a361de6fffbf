/**
 * One OpenAI call end to end: reserve the key's budget (keyed calls only), start the
 * `inferenceRequest` workflow (its id is the response id), await it, and answer as JSON or
 * relay the host's chunks as SSE. A client that goes away cancels the workflow (and so the
 * generation). Every outcome is written to the request log and to the request metrics.
 *
 * Budget lifecycle: the reservation is taken before anything is dispatched, and every exit
 * after it ends it exactly once — settled to the actual usage on success (after the
 * response went out), otherwise released once the workflow has closed. A generation
 * cancelled mid-stream was already settled by its host to the tokens it produced (the
 * workflow closes only after that), so the release leaves it settled and the log shows it.
 */
import { randomBytes } from 'node:crypto';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { Request, Response } from 'express';
import type { Kysely } from 'kysely';
import type { InferenceInput, InferenceResult, SamplingParams, Usage } from '../common/inference.js';
import { FleetModel, FleetRequestKind } from '../common/searchAttributes.js';
import { CONTROL_PLANE_QUEUE } from '../common/taskQueues.js';
import { retryThroughOutage } from '../common/outage.js';
import { releaseReservationIfHeld, reserveTokens, settleReservation } from '../db/budgetRepo.js';
import { insertRequestLog } from '../db/requestLogRepo.js';
import { insertResponseSignature } from '../db/signaturesRepo.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../logger.js';
import { recordBudgetRefusal, recordFirstText, recordInferenceResult, recordKeyTokens, recordRequest } from '../metrics.js';
import type { StreamChannel } from '../stream/channel.js';
import type { inferenceRequest } from '../workflows/inferenceRequest.js';
import type { Principal } from './auth.js';
import type { ModelCatalog } from './catalog.js';
import { budgetRefused, fromWorkflowFailure, keyRevoked, toErrorResponse, type ApiError } from './errors.js';
import type { KeyResolver } from './keyResolver.js';
import { fullResponse, type Endpoint, type ResponseMeta } from './openaiFormat.js';
import { StreamRelay } from './streamRelay.js';

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
}

export interface InferenceCall {
  endpoint: Endpoint;
  modelId: string;
  input: InferenceInput;
  params: SamplingParams;
  stream: boolean;
  includeUsage: boolean;
  principal: Principal | null;
  /** Upper bound of the tokens this call can use (src/domain/budget.ts); reserved when keyed. */
  reserveTokens: number;
}

const newRequestId = (endpoint: Endpoint) =>
  `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('base64url')}`;

const REFUSAL_REASON = { balance: 'balance', window: 'window', exceedsWindow: 'exceeds_window' } as const;

export async function runInference(deps: ApiDeps, call: InferenceCall, req: Request, res: Response): Promise<void> {
  const meta: ResponseMeta = {
    id: newRequestId(call.endpoint),
    created: Math.floor(Date.now() / 1000),
    model: call.modelId,
    endpoint: call.endpoint,
  };
  const log = deps.log.child({ requestId: meta.id, model: call.modelId });
  const started = new Date();
  const elapsedSeconds = () => (Date.now() - started.getTime()) / 1000;
  const writeLog = (o: { hostId: string | null; principal: string | null; status: 'ok' | 'error' | 'cancelled'; result?: InferenceResult; failure?: ApiError; usage?: Usage }) =>
    retryThroughOutage(() => insertRequestLog(deps.db, {
      id: meta.id,
      kind: call.endpoint,
      model_id: call.modelId,
      host_id: o.hostId,
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
    }), { maxMs: 30_000 }).catch((err: Error) => log.warn({ err: err.message }, 'request log write failed'));

  let handle: WorkflowHandle<typeof inferenceRequest> | undefined;
  let done = false;
  let clientGone = false;
  const cancel = () => {
    log.info('client disconnected; cancelling the request');
    handle!.cancel().catch(() => undefined);
  };
  // Listening from the start: a client may leave while the reservation is being taken.
  res.on('close', () => {
    if (done) return;
    clientGone = true;
    if (handle) cancel();
  });

  // Reserve before anything is dispatched: a refusal costs one transaction and nothing else.
  let principal = call.principal;
  if (principal) {
    const outcome = await reserveTokens(deps.db, {
      requestId: meta.id,
      keyId: principal.keyId,
      amount: call.reserveTokens,
      ttlSeconds: deps.budgets.reservationTtlS,
    });
    if (outcome.kind === 'revoked') {
      // Revoked by another API process since our cache read it: forget it here too.
      deps.keys.invalidate(principal.keyId);
      if (deps.requireAuth) return refuse(keyRevoked(), principal.keyId);
      principal = null; // as for any unrecognized key: served anonymously
    } else if (outcome.kind === 'refused') {
      recordBudgetRefusal(REFUSAL_REASON[outcome.refusal.kind]);
      return refuse(budgetRefused(outcome.refusal), principal.keyId);
    }
  }

  const relay = call.stream
    ? new StreamRelay(res, meta, call.includeUsage, sendError, {
        onFirstText: () => recordFirstText(call.endpoint, elapsedSeconds()),
      })
    : undefined;
  let unsubscribe: (() => void) | undefined;
  let result: InferenceResult | undefined;
  let failure: ApiError | undefined;
  try {
    // Subscribe before the workflow exists, so no chunk can be published before we listen.
    if (relay) unsubscribe = await deps.channel.subscribe(meta.id, (c) => relay.onChunk(c));
    handle = await deps.client.workflow.start<typeof inferenceRequest>('inferenceRequest', {
      taskQueue: CONTROL_PLANE_QUEUE,
      workflowId: meta.id,
      args: [
        {
          requestId: meta.id,
          modelId: call.modelId,
          input: call.input,
          params: call.params,
          stream: call.stream,
          principal: principal?.keyId ?? null,
          accountId: principal?.accountId ?? null,
        },
      ],
      // Closes before the reservation expires, so the sweep never releases a live request's hold.
      workflowExecutionTimeout: deps.budgets.requestTimeoutS * 1000,
      requestEagerStart: true,
      typedSearchAttributes: [
        { key: FleetModel, value: call.modelId },
        { key: FleetRequestKind, value: call.endpoint },
      ],
    });
    // Gone while the workflow was being started: nobody is waiting for (or paying for) it.
    if (clientGone) cancel();
    result = await handle.result();
  } catch (err) {
    failure = fromWorkflowFailure(err, call.modelId);
    if (failure.status >= 500 && failure.status !== 503) log.error({ err }, 'inference failed');
  } finally {
    done = true;
    unsubscribe?.();
  }

  if (!res.destroyed) {
    if (relay) relay.finish(result, failure);
    else if (result) res.json(fullResponse(meta, result.text, result.finishReason, result.usage));
    else sendError(res, failure!);
  }

  // A verifiable model's signature, right after the response (GET /v1/signature/:requestId).
  if (result?.signature) {
    const signature = result.signature;
    await retryThroughOutage(
      () => insertResponseSignature(deps.db, { requestId: meta.id, modelId: call.modelId, accountId: principal?.accountId ?? null, signature }),
      { maxMs: 30_000 },
    ).catch((err: Error) => log.error({ err: err.message }, 'storing the response signature failed'));
  }

  // The outcome's status, even when a mid-stream failure went out after a 200 header.
  recordRequest({ endpoint: call.endpoint, stream: call.stream, status: failure?.status ?? 200, seconds: elapsedSeconds() });
  if (result) {
    recordInferenceResult({
      model: call.modelId,
      promptTokens: result.usage.promptTokens,
      completionTokens: result.usage.completionTokens,
      failovers: result.failovers,
    });
  }

  // After the response: the client does not wait for the bookkeeping.
  let usage = result?.usage;
  if (principal) usage = await endReservation(deps, log, meta.id, principal, result);
  await writeLog({
    hostId: result?.hostId ?? null,
    principal: principal?.keyId ?? null,
    status: result ? 'ok' : res.destroyed && failure?.status === 499 ? 'cancelled' : 'error',
    result,
    failure,
    usage,
  });

  function refuse(err: ApiError, keyId: string): Promise<void> {
    sendError(res, err);
    recordRequest({ endpoint: call.endpoint, stream: call.stream, status: err.status, seconds: elapsedSeconds() });
    return writeLog({ hostId: null, principal: keyId, status: 'error', failure: err }).then(() => undefined);
  }
}

/**
 * Settles (success) or releases (anything else) the call's reservation; returns the usage to
 * log — for a cancelled generation, what its host settled. Never throws: the response is out,
 * and a hold left behind is released by the sweep when it expires.
 */
async function endReservation(
  deps: ApiDeps,
  log: Logger,
  requestId: string,
  principal: Principal,
  result: InferenceResult | undefined,
): Promise<Usage | undefined> {
  // Through a database outage too: a hold left to the sweep blocks the key's budget for its TTL.
  const retry = { onRetry: (attempt: number) => log.warn({ attempt, keyId: principal.keyId }, 'database unreachable; retrying the settlement') };
  try {
    if (result) {
      const settled = await retryThroughOutage(() => settleReservation(deps.db, requestId, result.usage), retry);
      if (settled) recordKeyTokens({ accountId: settled.accountId, keyId: settled.keyId, ...result.usage });
      return result.usage;
    }
    const outcome = await retryThroughOutage(() => releaseReservationIfHeld(deps.db, requestId), retry);
    return outcome?.state === 'settled' ? { promptTokens: outcome.promptTokens, completionTokens: outcome.completionTokens } : undefined;
  } catch (err) {
    log.error({ err: (err as Error).message, keyId: principal.keyId }, 'settling the reservation failed; the sweep will release it');
    return result?.usage;
  }
}

export function sendError(res: Response, err: unknown): void {
  const e = toErrorResponse(err);
  res.status(e.status).set(e.headers).json(e.body);
}
