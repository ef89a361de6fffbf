/**
 * POST /v1/chat/completions and POST /v1/completions: validate, resolve the model, turn the
 * body into an inference call. No routing or generation logic lives here.
 */
import { Router, type Request } from 'express';
import type { z } from 'zod';
import type { ChatMessage, InferenceInput, SamplingParams } from '../../common/inference.js';
import { promptUpperBound, reservationUpperBound } from '../../domain/budget.js';
import { principalFrom } from '../auth.js';
import { invalidRequest, modelNotFound } from '../errors.js';
import { runInference, type ApiDeps } from '../inferenceCall.js';
import {
  chatCompletionBody,
  completionBody,
  parseOr400,
  type ChatCompletionBody,
  type CompletionBody,
} from '../schemas.js';

function parse<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
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

async function handle(
  deps: ApiDeps,
  req: Request,
  res: Parameters<typeof runInference>[3],
  body: ChatCompletionBody | CompletionBody,
  input: InferenceInput,
  maxTokens: number | null,
  maxTokensParam: string,
): Promise<void> {
  const model = await deps.catalog.get(body.model);
  if (!model) throw modelNotFound(body.model);
  if (maxTokens !== null && maxTokens >= model.contextLength) {
    throw invalidRequest(
      `${maxTokensParam} is too large: ${maxTokens}. This model's maximum context length is ${model.contextLength} tokens.`,
      maxTokensParam,
      'context_length_exceeded',
    );
  }
  await runInference(
    deps,
    {
      endpoint: input.kind,
      modelId: model.id,
      input,
      params: samplingOf(body, maxTokens),
      stream: body.stream === true,
      includeUsage: body.stream === true && body.stream_options?.include_usage === true,
      principal: principalFrom(res),
      reserveTokens: reservationUpperBound({ contextLength: model.contextLength, promptBound: promptUpperBound(input), maxTokens }),
    },
    req,
    res,
  );
}

export function inferenceRoutes(deps: ApiDeps): Router {
  const r = Router();
  r.post('/v1/chat/completions', async (req, res) => {
    const body = parse(chatCompletionBody, req.body);
    const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? null;
    const param = body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
    await handle(deps, req, res, body, { kind: 'chat', messages: toMessages(body) }, maxTokens, param);
  });
  r.post('/v1/completions', async (req, res) => {
    const body = parse(completionBody, req.body);
    const prompt = typeof body.prompt === 'string' ? body.prompt : body.prompt[0]!;
    await handle(deps, req, res, body, { kind: 'completion', prompt }, body.max_tokens ?? null, 'max_tokens');
  });
  return r;
}
