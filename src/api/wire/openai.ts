/**
 * The OpenAI wire format: request bodies of `/v1/chat/completions` and `/v1/completions` turned
 * into an `InferenceCall`, and a `CallSink` that answers as OpenAI does — a JSON object, or SSE
 * chunks ending in `data: [DONE]` (or in an error event and no `[DONE]` when a stream breaks, so
 * a truncated answer is never presented as complete). Headers go out with the first text, so a
 * request that fails before producing anything still gets a plain HTTP error with its status.
 */
import { randomBytes } from 'node:crypto';
import type { Response } from 'express';
import type { z } from 'zod';
import type { InferenceInput, SamplingParams } from '../../common/inference.js';
import type { Principal } from '../auth.js';
import type { AliasEntry } from '../catalog.js';
import type { Answer, CallSink, InferenceCall } from '../callExecutor.js';
import { invalidRequest, toErrorResponse, type ApiError } from '../errors.js';
import { fullResponse, streamChunk, usageChunk, type Endpoint, type ResponseMeta } from '../openaiFormat.js';
import { chatCompletionBody, completionBody, parseOr400, type ChatCompletionBody, type CompletionBody } from '../schemas.js';
import { boundCall } from './callBounds.js';
import { chatFeatures, samplingOf, type ToolMode } from './chatFeatures.js';
import { responseSink, toolCallsOf, toolTextGate } from './sinkSupport.js';
import { endSse, sendEvent, startSse } from '../sse.js';

export function parseJsonObject<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalidRequest('The request body must be a JSON object (Content-Type: application/json).');
  }
  return parseOr400(schema, body);
}

export interface ParsedOpenAiCall {
  /** What the alias lookup needs. */
  model: string;
  endpoint: Endpoint;
  maxTokens: number | null;
  maxTokensParam: string;
  body: { kind: 'chat'; chat: ChatCompletionBody } | { kind: 'completion'; completion: CompletionBody };
  stream: boolean;
  includeUsage: boolean;
}

export function parseChat(raw: unknown): ParsedOpenAiCall {
  const body = parseJsonObject(chatCompletionBody, raw);
  const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? null;
  return {
    model: body.model,
    endpoint: 'chat',
    maxTokens,
    maxTokensParam: body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens',
    body: { kind: 'chat', chat: body },
    stream: body.stream === true,
    includeUsage: body.stream === true && body.stream_options?.include_usage === true,
  };
}

export function parseCompletion(raw: unknown): ParsedOpenAiCall {
  const body = parseJsonObject(completionBody, raw);
  return {
    model: body.model,
    endpoint: 'completion',
    maxTokens: body.max_tokens ?? null,
    maxTokensParam: 'max_tokens',
    body: { kind: 'completion', completion: body },
    stream: body.stream === true,
    includeUsage: body.stream === true && body.stream_options?.include_usage === true,
  };
}

const newRequestId = (endpoint: Endpoint) => `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('base64url')}`;

/** What the model is asked, how it samples, and how its text reads back — for the alias's build kind. */
function featuresOf(p: ParsedOpenAiCall, remote: boolean): { input: InferenceInput; params: SamplingParams; toolMode: ToolMode } {
  if (p.body.kind === 'chat') {
    const f = chatFeatures(p.body.chat, remote);
    return { input: { kind: 'chat', messages: f.messages }, params: samplingOf(p.body.chat, p.maxTokens, f.constraint), toolMode: f.toolMode };
  }
  const body = p.body.completion;
  const prompt = typeof body.prompt === 'string' ? body.prompt : body.prompt[0]!;
  return { input: { kind: 'completion', prompt }, params: samplingOf(body, p.maxTokens, undefined), toolMode: 'none' };
}

/**
 * The call for an alias the catalog resolved, and how its answer reads back; refuses a
 * `max_tokens` no context could hold.
 */
export function toCall(p: ParsedOpenAiCall, model: AliasEntry, principal: Principal | null): { call: InferenceCall; toolMode: ToolMode } {
  const features = featuresOf(p, model.kind === 'remote');
  const { input, toolMode } = features;
  const promptParam = p.endpoint === 'completion' ? 'prompt' : 'messages';
  const { params, reserveTokens } = boundCall({ input, params: features.params, contextLength: model.contextLength, maxTokensParam: p.maxTokensParam, promptParam });
  const call: InferenceCall = {
    requestId: newRequestId(p.endpoint),
    kind: p.endpoint,
    modelId: model.id,
    input,
    params,
    stream: p.stream,
    principal,
    reserveTokens,
  };
  return { call, toolMode };
}

export function sendOpenAiError(res: Response, err: unknown): void {
  const e = toErrorResponse(err);
  res.status(e.status).set(e.headers).json(e.body);
}

/** Pieces of a call's arguments per stream chunk (OpenAI sends a few characters at a time). */
const ARGUMENT_PIECE = 32;

/**
 * Renders an executed call as OpenAI does, JSON or SSE. With tools, streamed text is held back
 * while it may still be a call object; a call goes out as OpenAI streams one (its id and name,
 * then its arguments in pieces, then finish_reason `tool_calls`).
 */
export function openAiSink(res: Response, call: InferenceCall, o: { includeUsage: boolean; toolMode: ToolMode }): CallSink {
  const { includeUsage, toolMode } = o;
  const meta: ResponseMeta = { id: call.requestId, created: Math.floor(Date.now() / 1000), model: call.modelId, endpoint: call.kind === 'completion' ? 'completion' : 'chat' };
  let started = false;
  const ensureStarted = () => {
    if (started) return;
    started = true;
    startSse(res);
    sendEvent(res, streamChunk(meta, { role: 'assistant', text: '' }, includeUsage));
  };
  // The SDKs read `request_id` from it: the workflow id, which operators find in the Web UI.
  res.setHeader('x-request-id', call.requestId);
  const sendText = (delta: string) => {
    ensureStarted();
    sendEvent(res, streamChunk(meta, { text: delta }, includeUsage));
  };
  const gate = toolTextGate(toolMode, { send: sendText, held: ensureStarted });
  return responseSink(res, {
    text: (delta) => gate.push(delta),
    done(result: Answer) {
      const calls = toolCallsOf(result.text, toolMode);
      const finish = calls ? 'tool_calls' : result.finishReason;
      if (!call.stream) {
        res.json(fullResponse(meta, result.text, finish, result.usage, calls));
        return;
      }
      ensureStarted();
      if (calls) {
        calls.forEach((c, index) => {
          sendEvent(res, streamChunk(meta, { toolCall: { index, call: c } }, includeUsage));
          for (let i = 0; i < c.arguments.length; i += ARGUMENT_PIECE) {
            sendEvent(res, streamChunk(meta, { toolCall: { index, arguments: c.arguments.slice(i, i + ARGUMENT_PIECE) } }, includeUsage));
          }
        });
      } else {
        const rest = gate.rest();
        if (rest) sendText(rest);
      }
      sendEvent(res, streamChunk(meta, { finish }, includeUsage));
      if (includeUsage) sendEvent(res, usageChunk(meta, result.usage));
      endSse(res);
    },
    fail(error: ApiError) {
      if (!started) return sendOpenAiError(res, error);
      // Mid-stream failure: an error event and no [DONE], never a truncated answer as complete.
      sendEvent(res, toErrorResponse(error).body);
      res.end();
    },
  });
}
