/**
 * One OpenAI call end to end: start the `inferenceRequest` workflow (its id is the response
 * id), await it, and answer as JSON or relay the host's chunks as SSE. A client that goes away
 * cancels the workflow (and so the generation); every outcome is written to the request log
 * and to the request metrics.
 */
import { randomBytes } from 'node:crypto';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { Request, Response } from 'express';
import type { Kysely } from 'kysely';
import type { InferenceInput, InferenceResult, SamplingParams } from '../common/inference.js';
import { FleetModel, FleetRequestKind } from '../common/searchAttributes.js';
import { CONTROL_PLANE_QUEUE } from '../common/taskQueues.js';
import { insertRequestLog } from '../db/requestLogRepo.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../logger.js';
import { recordFirstText, recordInferenceResult, recordRequest } from '../metrics.js';
import type { StreamChannel } from '../stream/channel.js';
import type { inferenceRequest } from '../workflows/inferenceRequest.js';
import type { ModelCatalog } from './catalog.js';
import { fromWorkflowFailure, toErrorResponse, type ApiError } from './errors.js';
import { fullResponse, type Endpoint, type ResponseMeta } from './openaiFormat.js';
import { StreamRelay } from './streamRelay.js';

export interface ApiDeps {
  client: Client;
  channel: StreamChannel;
  db: Kysely<Database>;
  catalog: ModelCatalog;
  log: Logger;
  requireAuth: boolean;
}

export interface InferenceCall {
  endpoint: Endpoint;
  modelId: string;
  input: InferenceInput;
  params: SamplingParams;
  stream: boolean;
  includeUsage: boolean;
  principal: string | null;
}

const newRequestId = (endpoint: Endpoint) =>
  `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('base64url')}`;

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

  // Subscribe before the workflow exists, so no chunk can be published before we listen.
  const relay = call.stream
    ? new StreamRelay(res, meta, call.includeUsage, sendError, {
        onFirstText: () => recordFirstText(call.endpoint, elapsedSeconds()),
      })
    : undefined;
  const unsubscribe = relay ? await deps.channel.subscribe(meta.id, (c) => relay.onChunk(c)) : undefined;

  let handle: WorkflowHandle<typeof inferenceRequest> | undefined;
  let settled = false;
  res.on('close', () => {
    if (!settled && handle) {
      log.info('client disconnected; cancelling the request');
      handle.cancel().catch(() => undefined);
    }
  });

  let result: InferenceResult | undefined;
  let failure: ApiError | undefined;
  try {
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
          principal: call.principal,
        },
      ],
      workflowExecutionTimeout: '1 hour',
      requestEagerStart: true,
      typedSearchAttributes: [
        { key: FleetModel, value: call.modelId },
        { key: FleetRequestKind, value: call.endpoint },
      ],
    });
    result = await handle.result();
  } catch (err) {
    failure = fromWorkflowFailure(err, call.modelId);
    if (failure.status >= 500 && failure.status !== 503) log.error({ err }, 'inference failed');
  } finally {
    settled = true;
    unsubscribe?.();
  }

  if (!res.destroyed) {
    if (relay) relay.finish(result, failure);
    else if (result) res.json(fullResponse(meta, result.text, result.finishReason, result.usage));
    else sendError(res, failure!);
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

  insertRequestLog(deps.db, {
    id: meta.id,
    kind: call.endpoint,
    model_id: call.modelId,
    host_id: result?.hostId ?? null,
    principal: call.principal,
    stream: call.stream,
    status: result ? 'ok' : res.destroyed && failure?.status === 499 ? 'cancelled' : 'error',
    finish_reason: result?.finishReason ?? null,
    error_code: failure?.code ?? null,
    prompt_tokens: result?.usage.promptTokens ?? 0,
    completion_tokens: result?.usage.completionTokens ?? 0,
    started_at: started,
    finished_at: new Date(),
    duration_ms: Date.now() - started.getTime(),
  }).catch((err: Error) => log.warn({ err: err.message }, 'request log write failed'));
}

export function sendError(res: Response, err: unknown): void {
  const e = toErrorResponse(err);
  res.status(e.status).set(e.headers).json(e.body);
}
