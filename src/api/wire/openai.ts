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
import type { ChatMessage, InferenceInput, SamplingParams } from '../../common/inference.js';
import { promptUpperBound, reservationUpperBound } from '../../domain/budget.js';
import type { Principal } from '../auth.js';
import type { AliasEntry } from '../catalog.js';
import type { Answer, CallSink, InferenceCall } from '../callExecutor.js';
import { invalidRequest, toErrorResponse, type ApiError } from '../errors.js';
import { fullResponse, streamChunk, usageChunk, type Endpoint, type ResponseMeta } from '../openaiFormat.js';
import { chatCompletionBody, completionBody, parseOr400, type ChatCompletionBody, type CompletionBody } from '../schemas.js';
import { endSse, sendEvent, startSse } from '../sse.js';

export function parseJsonObject<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalidRequest('The request body must be a JSON object (Content-Type: application/json).');
  }
  return parseOr400(schema, body);
}

function toMessages(body: ChatCompletionBody): ChatMessage[] {
  return body.messages.map((m, i) => {
    if (typeof m.content === 'string' || m.content == null) return { role: m.role, content: m.content ?? '' };
    const text: string[] = [];
    for (const part of m.content) {
      if (part.type === 'text') text.push(part.text);
      else if (part.type === 'refusal') text.push(part.refusal);
      else throw invalidRequest(`Only text content is supported; got '${part.type}'.`, `messages.${i}.content`);
    }
    return { role: m.role, content: text.join('\n') };
  });
}

function samplingOf(body: ChatCompletionBody | CompletionBody, maxTokens: number | null): SamplingParams {
  const stop = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return {
    maxTokens,
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    seed: body.seed ?? undefined,
    stop: stop.filter((s) => s.length > 0),
  };
}

export interface ParsedOpenAiCall {
  /** What the alias lookup needs. */
  model: string;
  endpoint: Endpoint;
  input: InferenceInput;
  maxTokens: number | null;
  maxTokensParam: string;
  body: ChatCompletionBody | CompletionBody;
  includeUsage: boolean;
}

export function parseChat(raw: unknown): ParsedOpenAiCall {
  const body = parseJsonObject(chatCompletionBody, raw);
  const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? null;
  return {
    model: body.model,
    endpoint: 'chat',
    input: { kind: 'chat', messages: toMessages(body) },
    maxTokens,
    maxTokensParam: body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens',
    body,
    includeUsage: body.stream === true && body.stream_options?.include_usage === true,
  };
}

export function parseCompletion(raw: unknown): ParsedOpenAiCall {
  const body = parseJsonObject(completionBody, raw);
  const prompt = typeof body.prompt === 'string' ? body.prompt : body.prompt[0]!;
  return {
    model: body.model,
    endpoint: 'completion',
    input: { kind: 'completion', prompt },
    maxTokens: body.max_tokens ?? null,
    maxTokensParam: 'max_tokens',
    body,
    includeUsage: body.stream === true && body.stream_options?.include_usage === true,
  };
}

const newRequestId = (endpoint: Endpoint) => `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('base64url')}`;

/** The call for an alias the catalog resolved; refuses a `max_tokens` no context could hold. */
export function toCall(p: ParsedOpenAiCall, model: AliasEntry, principal: Principal | null): InferenceCall {
  if (p.maxTokens !== null && p.maxTokens >= model.contextLength) {
    throw invalidRequest(
      `${p.maxTokensParam} is too large: ${p.maxTokens}. This model's maximum context length is ${model.contextLength} tokens.`,
      p.maxTokensParam,
      'context_length_exceeded',
    );
  }
  return {
    requestId: newRequestId(p.endpoint),
    kind: p.endpoint,
    modelId: model.id,
    input: p.input,
    params: samplingOf(p.body, p.maxTokens),
    stream: p.body.stream === true,
    principal,
    reserveTokens: reservationUpperBound({ contextLength: model.contextLength, promptBound: promptUpperBound(p.input), maxTokens: p.maxTokens }),
  };
}

export function sendOpenAiError(res: Response, err: unknown): void {
  const e = toErrorResponse(err);
  res.status(e.status).set(e.headers).json(e.body);
}

/** Renders an executed call as OpenAI does, JSON or SSE. */
export function openAiSink(res: Response, call: InferenceCall, includeUsage: boolean): CallSink {
  const meta: ResponseMeta = { id: call.requestId, created: Math.floor(Date.now() / 1000), model: call.modelId, endpoint: call.kind };
  let started = false;
  const ensureStarted = () => {
    if (started) return;
    started = true;
    startSse(res);
    sendEvent(res, streamChunk(meta, { role: 'assistant', text: '' }, includeUsage));
  };
  return {
    get closed() {
      return res.destroyed;
    },
    onClose: (listener) => void res.on('close', listener),
    text(delta) {
      ensureStarted();
      sendEvent(res, streamChunk(meta, { text: delta }, includeUsage));
    },
    done(result: Answer) {
      if (!call.stream) {
        res.json(fullResponse(meta, result.text, result.finishReason, result.usage));
        return;
      }
      ensureStarted();
      sendEvent(res, streamChunk(meta, { finish: result.finishReason }, includeUsage));
      if (includeUsage) sendEvent(res, usageChunk(meta, result.usage));
      endSse(res);
    },
    fail(error: ApiError) {
      if (!started) return sendOpenAiError(res, error);
      // Mid-stream failure: an error event and no [DONE], never a truncated answer as complete.
      sendEvent(res, toErrorResponse(error).body);
      res.end();
    },
  };
}
